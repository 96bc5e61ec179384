"""One queue's page: its pending messages in the order a worker takes them; admins clear it.

Read from the broker's own lists (app.monitoring.pending_messages), so it shows what is
really waiting, priority sub-lists included; a tenant sees its own jobs only. "Clear queue"
(admins) shows the count first, then removes the tenant's waiting messages and held jobs
and cancels their jobs (app.services.queue_clear), audited.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from app.backends.current import backends
from app.monitoring import pending_messages
from app.services import queue_clear
from app.services.bulk_actions import TIME_BUDGET_S
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import redis, tenant
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_action, request_reason

#: Longest offset accepted in ?offset= (far beyond any queue a page could walk).
MAX_OFFSET = 10_000_000


def _is_queue_name(name: str) -> bool:
    return 0 < len(name) <= 100 and all(ch.isalnum() or ch in "._-" for ch in name)


def _offset() -> int:
    raw = request.args.get("offset", "0").strip()
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_OFFSET:
        return 0
    return int(raw)


@bp.get("/queues/<name>")
@console_role("viewer")
def queue_page(name: str) -> Any:
    if not _is_queue_name(name):
        abort(404, description=f"no queue named {name!r}")
    page = pending_messages.pending_messages(
        sql(), redis(), name, tenant(), offset=_offset(), default_tenant=app_settings().default_tenant
    )
    return render_template(
        "console/queue_page.html",
        name=name,
        page=page,
        all_tenants=tenant() is None,
        page_size=pending_messages.PAGE_SIZE,
    )


def _known_name(name: str) -> str:
    if not _is_queue_name(name):
        abort(404, description=f"no queue named {name!r}")
    return name


@bp.get("/queues/<name>/clear")
@console_role("admin")
def queue_clear_preview(name: str) -> Any:
    found = queue_clear.preview(sql(), redis(), _known_name(name), tenant(), app_settings().default_tenant)
    return render_template("console/queue_clear_preview.html", name=name, found=found, all_tenants=tenant() is None)


@bp.post("/queues/<name>/clear")
@console_role("admin")
def queue_clear_confirmed(name: str) -> Any:
    reason = request_reason()
    outcome = queue_clear.clear(
        sql(),
        redis(),
        backends().canceller,
        _known_name(name),
        tenant(),
        default_tenant=app_settings().default_tenant,
        reason=reason,
        time_budget_s=TIME_BUDGET_S,
    )
    record_action("queue.clear", "queue", name, after=outcome.as_dict(), reason=reason)
    flash(outcome.message(), "success")
    return redirect(url_for("console.queue_page", name=name))
