"""Queues: depth, latency, throughput, failures, rate limit, pause / resume (W2) and settings.

Figures come from app.monitoring.queue_stats (indexed counts and the per-minute aggregates),
scoped to the signed-in tenant; pause state and consumers are global. Pausing is global
infrastructure control, so it needs the admin role (as in the API).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import flash, g, redirect, url_for
from sqlalchemy import select

from app.control import pauses
from app.control.queues import configured_queues, control_states
from app.errors import AppError, NotFound
from app.models import User
from app.monitoring.metrics import known_queues
from app.monitoring.queue_stats import QueueStats, stats_of_queues
from app.monitoring.workers import ONLINE, list_workers
from app.ratelimit import queue_limits
from ops_ui import control_actions
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import redis, render_page, tenant
from ops_ui.blueprints.console.queue_settings import settings_views
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_action, request_reason


@dataclass(frozen=True)
class QueueRow:
    """One queue as the page shows it."""

    name: str
    stats: QueueStats | None
    pause: pauses.PauseState | None
    paused_at: datetime | None
    limit: queue_limits.QueueLimit | None
    consumers: int
    held_by: int
    #: Who paused or resumed it, as an operator reads it (an e-mail, "an API token", "cli").
    changed_by: str | None = None

    @property
    def paused(self) -> bool:
        return self.pause is not None and self.pause.paused


def actor_names(actors: set[str]) -> dict[str, str]:
    """Audit actors ("user:<id>", "token:<id>", "cli") as names: users' e-mails (one query)."""
    user_ids = [a.split(":", 1)[1] for a in actors if a.startswith("user:")]
    emails: dict[str, str] = {}
    if user_ids:
        rows = sql().execute(select(User.id, User.email).where(User.id.in_(user_ids)))
        emails = {str(user_id): str(email) for user_id, email in rows}
    names = {}
    for actor in actors:
        kind, _, ident = actor.partition(":")
        names[actor] = emails.get(ident, actor) if kind == "user" else ("an API token" if kind == "token" else actor)
    return names


def queue_rows() -> list[QueueRow]:
    client = redis()
    names = sorted(set(known_queues(sql(), tenant())) | configured_queues(client, app_settings()))
    states = pauses.all_states(client)
    limits = queue_limits.load_all(client, app_settings())
    online = [w.heartbeat for w in list_workers(client, app_settings().monitoring) if w.status == ONLINE]
    holders = [set(s.get("held") or []) for s in control_states(client).values()]
    names_of = actor_names({state.by for state in states.values()})
    stats = {found.queue: found for found in stats_of_queues(sql(), names, tenant(), client)}
    rows = []
    for name in names:
        state = states.get(name)
        rows.append(
            QueueRow(
                name=name,
                stats=stats.get(name),  # None: consumed or configured, but this tenant never used it
                pause=state,
                paused_at=datetime.fromtimestamp(state.at, UTC) if state else None,
                limit=limits.get(name),
                consumers=sum(1 for beat in online if name in beat.queues),
                held_by=sum(1 for held in holders if name in held),
                changed_by=names_of.get(state.by) if state else None,
            )
        )
    return rows


@bp.get("/queues")
@console_role("viewer")
def queues() -> Any:
    rows = queue_rows()
    return render_page(
        "console/queues.html",
        "console/queues_table.html",
        rows=rows,
        all_tenants=tenant() is None,
        settings_rows=lambda: settings_views({row.name for row in rows}),
    )


def _act(name: str, pause: bool) -> Any:
    act = control_actions.pause_queue if pause else control_actions.resume_queue
    try:
        act(name, g.principal.actor, request_reason(), record_action)
    except NotFound:
        raise
    except AppError as exc:  # an invalid name: nothing changed
        flash(str(exc), "error")
        return redirect(url_for("console.queues"))
    if pause:
        flash(f"Paused {name}: workers stop fetching from it within seconds; reserved jobs still finish.", "success")
    else:
        flash(f"Resumed {name}: workers that consumed it fetch from it again.", "success")
    return redirect(url_for("console.queues"))


@bp.post("/queues/<name>/pause")
@console_role("admin")
def queue_pause(name: str) -> Any:
    return _act(name, pause=True)


@bp.post("/queues/<name>/resume")
@console_role("admin")
def queue_resume(name: str) -> Any:
    return _act(name, pause=False)
