from __future__ import annotations


class ModelError(Exception):
    """A model call that produced no usable answer. `permanent` means retrying the same call is pointless;
    `status` is the provider's HTTP status when it answered with an error."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


class SchemaInvalid(ModelError):
    """The model answered, but not in the shape the step's schema requires."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False)


class Refused(ModelError):
    """The model declined to answer (a refusal, or the provider's content filter). The provider is working;
    asking the same tier the same thing again would most likely be refused again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)
