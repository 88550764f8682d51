"""Typed domain errors, the one error vocabulary of services and runtimes. ``api/errors.py`` maps
them to HTTP statuses and WebSocket close codes.

Each carries a machine-readable ``code``, a message safe to show a user, a ``log_message`` that
may hold host details and is only logged, and optional extra fields for the JSON body (e.g.
``current_version`` on a version conflict).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"

    def __init__(
        self, message: str, *, code: str | None = None, log_message: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.log_message = log_message or message
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


class Gone(DomainError):
    """It existed and is no longer available (an expired or revoked public link)."""

    code = "gone"


class TooLarge(DomainError):
    code = "too_large"


class RateLimited(DomainError):
    code = "rate_limited"


class BadGateway(DomainError):
    """A program the platform relays to (a session's previewed port) did not answer."""

    code = "bad_gateway"


class Unavailable(DomainError):
    code = "unavailable"


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached (refused, timed out, pool exhausted, SQLite locked)."""

    code = "database_unavailable"


class SandboxError(DomainError):
    """A sandbox runtime failure (start, exec, file access, host set-up). ``reason`` is
    machine-readable (the ``code`` is ``sandbox_<reason>``); ``user_message`` is safe to show;
    ``log_message`` may contain host details and is only logged."""

    code = "sandbox_error"

    def __init__(self, reason: str, user_message: str, log_message: str | None = None) -> None:
        super().__init__(user_message, code=f"sandbox_{reason}", log_message=log_message)
        self.reason = reason

    @property
    def user_message(self) -> str:
        return self.message
