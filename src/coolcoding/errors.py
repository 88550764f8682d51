"""Typed domain errors. Services raise them; ``api/errors.py`` maps them to HTTP and WS codes.

Each carries a machine-readable ``code``, a message safe to show a user and optional extra fields
for the JSON body (e.g. ``current_version`` on a version conflict).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(DomainError):
    code = "invalid_input"


class NotAuthenticated(DomainError):
    code = "not_authenticated"


class Forbidden(DomainError):
    """Refused whoever asks (e.g. a cross-site WebSocket Origin); never for another user's data,
    which is ``NotFound``."""

    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class TooLarge(DomainError):
    code = "too_large"


class RateLimited(DomainError):
    code = "rate_limited"


class Unavailable(DomainError):
    code = "unavailable"


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached (refused, timed out, pool exhausted, SQLite locked)."""

    code = "database_unavailable"
