"""What every console page needs: Redis, the caller's tenant, htmx partials (settings: ops_ui.settings;
backends: app.backends.current)."""

from __future__ import annotations

from typing import Any

from flask import g, render_template, request

from app.backends.current import backends
from app.redis_client import get_redis
from ops_ui.settings import app_settings


def redis() -> Any:
    return get_redis(app_settings().redis_url)


def dispatching() -> dict[str, Any]:
    """What a retry needs: the process's registry and publisher, the app's settings."""
    used = backends()
    return {"registry": used.registry, "publisher": used.publisher, "settings": app_settings()}


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
