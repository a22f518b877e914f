from __future__ import annotations


class ModelError(Exception):
    """A model call that produced no usable answer. `permanent` means retrying the same call is pointless."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class SchemaInvalid(ModelError):
    """The model answered, but not in the shape the step's schema requires."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False)
