"""Errors -> HTTP in one place: problem+json under /api, HTML pages elsewhere."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app.errors import AppError

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
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def handle_app_error(exc: AppError) -> Any:
        if _wants_json():
            return problem(exc.status, exc.title, str(exc))
        return render_template("error.html", status=exc.status, title=exc.title, detail=str(exc)), exc.status

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if _wants_json():
            return problem(status, exc.name, exc.description or exc.name)
        return render_template("error.html", status=status, title=exc.name, detail=exc.description), status

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Any:
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return problem(500, "Internal error", "an unexpected error occurred; it has been logged")
        return render_template("error.html", status=500, title="Internal error", detail="It has been logged."), 500
