"""The web process: operations console and REST API (`create_app`, flaskr style)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.middleware.proxy_fix import ProxyFix

from app.backends import current
from app.celery_app import celery_app, real_backends
from app.config import ROOT_DIR, Settings, get_settings
from app.db import db, engine_options, get_engine
from app.jobs.celery_backend import load_task_modules, sync_registry_definitions
from ops_ui import templating
from ops_ui.blueprints import console, health, metrics
from ops_ui.blueprints.api import bp as api_bp
from ops_ui.bodies import discard_unread_body
from ops_ui.cli import register_cli
from ops_ui.cli_checks import missing_sqlite_file, require_task_modules
from ops_ui.errors import problem, register_error_handlers
from ops_ui.extensions import csrf, login_manager, migrate
from ops_ui.settings import install_settings

logger = logging.getLogger(__name__)

#: Headers on every response; the console loads nothing from other origins.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def create_app(test_config: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """Build the Flask app from settings, with `test_config` applied on top."""
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_TIME_LIMIT=None,
    )
    if test_config:
        app.config.update(test_config)
    install_settings(app, settings)
    _start_backends(settings)
    if settings.trusted_proxies:
        # The client address, scheme and host as the proxies in front of us saw them
        # (login throttling and the audit log key on the address).
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT_DIR / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "console.login"

    templating.install(app)


    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)  # the API authenticates with bearer tokens, not cookies
    app.register_blueprint(console.bp)
    register_error_handlers(app)
    register_cli(app)
    _install_request_hooks(app)
    _load_registry(app, settings)
    return app


def _start_backends(settings: Settings) -> None:
    """This process's real backends exist before the first request; views reach them through
    `app.backends.current.backends()`. Importing the wired Celery app builds them (its
    `connect_worker`) unless something already did; `start` builds them here otherwise."""

    current.start(lambda: real_backends(celery_app, settings))


def _install_request_hooks(app: Flask) -> None:
    @app.before_request
    def refuse_large_bodies() -> Response | None:
        limit = app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length > limit:
            return problem(413, "Payload too large", f"the body is over the {limit}-byte limit")
        return None

    # Any answer given before the body was read (413, 401, ...) reaches the client only
    # if the rest of the body is read first (ops_ui/bodies.py says why).
    app.after_request(discard_unread_body)

    @app.teardown_request
    def end_request_session(_exc: BaseException | None) -> None:
        db.session.remove()  # this request's own session (app.db: one per request)

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def _load_registry(app: Flask, settings: Settings) -> None:
    """Import task modules so dispatch knows every job; sync definitions when possible.

    A misspelt CELERIAC_TASK_MODULES entry stops here with one line naming it (CannotRun:
    the `flask` command prints it alone); a SQLite file that does not exist is not created.
    """

    require_task_modules(settings.task_modules)
    load_task_modules()
    if app.config.get("TESTING") or missing_sqlite_file(settings.database_url) is not None:
        return
    try:
        if not inspect(get_engine()).has_table("job_definitions"):
            return  # before the first migration (`flask db upgrade` itself): nothing to sync
        added = sync_registry_definitions()
        if added:
            logger.info("Added %d job definitions from code", added)
    except SQLAlchemyError as exc:  # before the first migration: the CLI will sync later
        logger.warning("Job definitions not synced yet (%s)", exc.__class__.__name__)


__all__ = ["create_app"]
