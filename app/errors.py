"""Errors services raise; ops_ui/errors.py maps each to one HTTP status in one place."""

from __future__ import annotations


class AppError(Exception):
    """Base of every error a caller is expected to handle."""

    status = 500
    title = "Internal error"


class NotFound(AppError):
    """Raised when an id is unknown, or belongs to another tenant (never tell which)."""

    status = 404
    title = "Not found"


class Conflict(AppError):
    """Raised when an action does not fit the current state (retry a completed job)."""

    status = 409
    title = "Conflict"


class ValidationError(AppError):
    """Raised when input is well-formed but invalid (unknown job class, bad priority)."""

    status = 422
    title = "Unprocessable entity"


class Forbidden(AppError):
    """Raised when the caller's role may not perform the action."""

    status = 403
    title = "Forbidden"


class BackendUnavailable(AppError):
    """Raised when Redis or the database cannot be reached; retrying later may work."""

    status = 503
    title = "Service unavailable"


class QueueFull(AppError):
    """Raised when a dispatch would put more jobs pending on a queue than its `max_pending`.

    `retry_after_s` says when trying again is likely to succeed (the 429's Retry-After).
    """

    status = 429
    title = "Too many requests"

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
