from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A request the product refuses, with a message meant for the person or client who sent it."""

    def __init__(self, message: str, *, status: int = 400, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra or {}
