"""What every console page needs: settings, Redis, the caller's tenant, htmx partials."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, render_template, request

from app.config import Settings
from app.redis_client import get_redis


def settings() -> Settings:
    value: Settings = current_app.extensions["celeriac_settings"]
    return value


def redis() -> Any:
    return get_redis(settings().redis_url)


def tenant() -> str | None:
    """The signed-in user's tenant; None for a superadmin, who sees every tenant."""
    value: str | None = g.principal.tenant_id
    return value


def is_htmx() -> bool:
    """Whether htmx asked for this (a live-update poll or a partial swap)."""
    return request.headers.get("HX-Request") == "true"


def render_page(template: str, partial: str | None = None, **context: Any) -> str:
    """Render the full page, or only `partial` when htmx asks for a fragment."""
    if partial is not None and is_htmx():
        return render_template(partial, **context)
    return render_template(template, **context)
