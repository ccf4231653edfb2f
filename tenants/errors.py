"""Domain errors shared by the core packages; the gateway maps each to an HTTP problem."""

from __future__ import annotations

from typing import Any

__all__ = ["Conflict", "DomainError", "Forbidden", "Invalid", "NotFound", "Unauthenticated"]


class DomainError(Exception):
    """Base of every error a service raises on purpose. `detail` is safe to show to the caller."""

    title = "Request failed"

    def __init__(
        self, detail: str, *, code: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.extra = extra or {}


class Invalid(DomainError):
    title = "Invalid input"


class NotFound(DomainError):
    """Also raised for another tenant's objects, so that their existence never leaks."""

    title = "Not found"


class Forbidden(DomainError):
    title = "Forbidden"


class Conflict(DomainError):
    title = "Conflict"


class Unauthenticated(DomainError):
    title = "Authentication required"
