"""Jinja filters and globals shared by every console page.

Times render as `<time>` elements in UTC; `static/js/console.js` rewrites them into the
operator's timezone and keeps the UTC value in the hover title.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask, url_for
from markupsafe import Markup, escape

from app.services.auth import role_allows
from ops_ui.advice_links import advice_html
from ops_ui.charts import bar_chart
from ops_ui.settings import app_settings
from ops_ui.shown_errors import without_type

#: Navigation: (endpoint, label, least role). Pages the role may not open are not listed.
NAVIGATION: tuple[tuple[str, str, str], ...] = (
    ("console.dashboard", "Dashboard", "viewer"),
    ("console.jobs", "Jobs", "viewer"),
    ("console.dispatch_form", "Dispatch", "operator"),
    ("console.failed", "Failed", "viewer"),
    ("console.retries", "Retries", "viewer"),
    ("console.scheduled", "Scheduled", "viewer"),
    ("console.batches", "Batches", "viewer"),
    ("console.chains", "Chains", "viewer"),
    ("console.schedules", "Schedules", "viewer"),
    ("console.definitions", "Definitions", "viewer"),
    ("console.queues", "Queues", "viewer"),
    ("console.workers", "Workers", "viewer"),
    ("console.performance", "Performance", "viewer"),
    ("console.audit_log", "Audit log", "admin"),
    ("console.tokens", "API tokens", "admin"),
    ("console.users", "Users", "admin"),
)


def when(value: datetime | None, empty: str = "—") -> Markup:
    """A UTC timestamp as a `<time>` element (localised in the browser, UTC on hover)."""
    if value is None:
        return Markup(escape(empty))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    iso = value.isoformat()
    shown = value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup(f'<time datetime="{iso}" title="{shown}">{shown}</time>')


def duration_ms(value: float | int | None) -> str:
    """Milliseconds as an operator reads them: 850 ms, 2.4 s, 3 min 5 s."""
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} ms"
    seconds = value / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def number(value: float | int | None) -> str:
    """Thousands separated: 4,200."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def flower_url() -> str:
    settings = app_settings()
    return settings.flower_url or f"http://127.0.0.1:{settings.flower_port}"


def navigation(role: str) -> list[tuple[str, str]]:

    return [(url_for(endpoint), label) for endpoint, label, needed in NAVIGATION if role_allows(role, needed)]


#: F2: pages of this least role go into the navigation's "More" menu (with Flower), so the
#: main line stays one line at 1440 px (and 1280 px) however many operator pages there are.
MORE_MENU_ROLE = "admin"


def navigation_groups(role: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(main line, "More" menu) of `navigation(role)`."""
    main: list[tuple[str, str]] = []
    more: list[tuple[str, str]] = []
    for endpoint, label, needed in NAVIGATION:
        if role_allows(role, needed):
            (more if needed == MORE_MENU_ROLE else main).append((url_for(endpoint), label))
    return main, more


def install(app: Flask) -> None:
    app.jinja_env.filters.update(when=when, duration_ms=duration_ms, number=number)
    app.jinja_env.globals.update(flower_url=flower_url, navigation=navigation, bar_chart=bar_chart)

    app.jinja_env.globals.update(role_allows=role_allows)
    # F2: operator-reported fixes (navigation menu, exception text, recommendation links).
    app.jinja_env.globals.update(navigation_groups=navigation_groups)
    app.jinja_env.filters.update(without_type=without_type, advice=advice_html)


__all__ = ["install", "when", "duration_ms", "number"]
