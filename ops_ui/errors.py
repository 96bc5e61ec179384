"""Errors -> HTTP in one place: problem+json under /api, HTML pages elsewhere.

An unreachable backend (SQL, Redis, the broker) is a 503 with `Retry-After`, never a 500:
`backend_outage` is the one list of the exceptions that mean "down, try again later".
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app.db import db
from app.errors import AppError, QueueFull
from ops_ui.extensions import login_manager

logger = logging.getLogger(__name__)

PROBLEM_TYPES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    422: "unprocessable-entity",
    429: "too-many-requests",
    500: "internal-error",
    503: "service-unavailable",
}

#: Seconds a client should wait before retrying after a 503 (about one connect timeout).
RETRY_AFTER_S = 5

#: Exceptions that say Redis is unreachable, loading its data or read-only (failover).
_REDIS_DOWN = (
    redis.exceptions.ConnectionError,  # BusyLoadingError is one of these
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
)
#: Exceptions that say the SQL database is unreachable (or timed out handing a connection).
_SQL_DOWN = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError)
#: How many causes of an exception are looked through for an outage.
_CHAIN_LIMIT = 8


def problem(status: int, title: str, detail: str) -> Response:
    """An `application/problem+json` response (RFC 9457)."""
    body: dict[str, Any] = {
        "type": f"https://celeriac.dev/problems/{PROBLEM_TYPES.get(status, 'error')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="celeriac"'
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def backend_outage(exc: BaseException) -> str | None:
    """The backend an exception (or one of its causes) says is unreachable, else None.

    Returns "the database", "Redis" or "the broker", for messages.
    """
    current: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if current is None:
            return None
        if isinstance(current, _SQL_DOWN):
            return "the database"
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return "the database"
        if isinstance(current, _REDIS_DOWN):
            return "Redis"
        if isinstance(current, kombu.exceptions.OperationalError):
            return "the broker"
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics"


def _roll_back() -> None:
    """Leave the request's SQL session usable for the next request (after a failed flush,
    or a connection that died mid-transaction)."""

    try:
        db.session.rollback()
    except Exception as exc:  # the database may still be down: the next request retries
        logger.warning("Rollback after an error failed (%s)", exc.__class__.__name__)


def _page(status: int, title: str, detail: str, backend: str | None = None, as_visitor: bool = False) -> Any:
    """error.html; `backend` names what is down (the page then says it will come back).

    As a visitor (`as_visitor`, always during an outage): the signed-in user is read from
    SQL, and after a rollback it would be read again, so the page shows no user menu
    rather than fail while it is shown.
    """
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}
    if as_visitor or backend is not None:

        g._login_user = login_manager.anonymous_user()
    try:
        html = render_template("error.html", status=status, title=title, detail=detail, backend=backend)
    except Exception as exc:  # the page itself needs what just failed: answer in plain text
        logger.warning("The %d page could not be rendered (%s); answered in plain text", status, type(exc).__name__)
        headers["Content-Type"] = "text/plain; charset=utf-8"
        html = f"{status} {title}. {detail}"
    return html, status, headers


def _outage_answer(backend: str) -> Any:
    if _wants_json():
        return problem(503, "Service unavailable", f"{backend} is unreachable; try again in {RETRY_AFTER_S} seconds")
    detail = f"Celeriac cannot reach {backend} right now."
    return _page(503, "Service unavailable", detail, backend=backend)


def _log_outage(backend: str, exc: BaseException) -> None:
    # The class name only: a driver's message can carry SQL parameters (payloads, hashes).
    logger.warning(
        "%s %s: %s is unreachable (%s); answered 503", request.method, request.path, backend, type(exc).__name__
    )


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def handle_app_error(exc: AppError) -> Any:
        if exc.status >= 500:
            _roll_back()
        if _wants_json():
            answer = problem(exc.status, exc.title, str(exc))
            if isinstance(exc, QueueFull):
                answer.headers["Retry-After"] = str(exc.retry_after_s)
            return answer
        return _page(exc.status, exc.title, str(exc), as_visitor=exc.status >= 500)

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if _wants_json():
            return problem(status, exc.name, exc.description or exc.name)
        return _page(status, exc.name, exc.description or exc.name)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Any:
        _roll_back()
        backend = backend_outage(exc)
        if backend is not None:
            _log_outage(backend, exc)
            return _outage_answer(backend)
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return problem(500, "Internal error", "an unexpected error occurred; it has been logged")
        return _page(500, "Internal error", "It has been logged.", as_visitor=True)
