"""`flask queue list` and `flask queue settings QUEUE [...]`: per-queue settings at a shell
(registered in ops_ui/cli_queue.py; `flask queues ...` is the older spelling).

The same service as `GET|PUT /api/queues/{name}` (ops_ui.queue_actions): an option left
out stays as it is, `--clear FIELD` clears one; every change is audited with actor "cli".
Errors are one readable line: exit 3 under `flask queue`, 1 under `flask queues`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from app.control import queue_settings
from app.control.queues import configured_queues
from app.errors import AppError
from app.kernel.queue_defaults import parse_rate_limit
from app.monitoring.metrics import known_queues
from app.redis_client import get_redis
from ops_ui import queue_actions
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_cli_action


def _summary(view: dict[str, Any]) -> str:
    limit = view["rate_limit"]
    rate = f"{limit['limit']}/{limit['per']}s" if limit["limit"] is not None else "-"
    parts = [
        f"max_attempts={view['max_attempts']}",
        f"retry_after={view['retry_after'] if view['retry_after'] is not None else 'exponential'}",
        f"timeout={view['timeout']}s",
        f"encrypted={'yes' if view['encrypted'] else 'no'}",
        f"rate_limit={rate}",
        f"weight={view['weight']}",
        f"max_pending={view['max_pending'] if view['max_pending'] is not None else '-'}",
    ]
    changed = sorted(k for k, source in view["sources"].items() if source != "default")
    suffix = f"  (set: {', '.join(changed)})" if changed else ""
    return f"{view['queue']}  " + "  ".join(parts) + suffix


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as GET /api/queues/{name}, one per queue).")
def queues_list(as_json: bool) -> None:
    """Every known queue with the settings in effect."""
    settings = app_settings()
    client = get_redis(settings.redis_url)
    try:
        names = set(known_queues(sql(), None)) | configured_queues(client, settings)
        views = queue_settings.list_queue_views(sql(), client, settings, names)
    except AppError as exc:
        raise click.ClickException(str(exc)) from exc
    for view in views:
        click.echo(json.dumps(view) if as_json else _summary(view))


def _rate_limit(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, int] | None:
    if value is None:
        return None
    try:
        limit, per = parse_rate_limit(value)
    except AppError as exc:
        raise click.BadParameter("give it as N/SECONDS, e.g. 100/60") from exc
    return {"limit": limit, "per": per}


@click.command("settings")
@click.argument("queue")
@click.option("--max-attempts", type=int, help="Attempts of the queue's jobs, 1-100.")
@click.option("--retry-after", type=int, help="Seconds before a retry when a job has no backoff of its own.")
@click.option("--timeout", type=int, help="Seconds a job may run (soft limit), up to CELERIAC_MAX_TIMEOUT_S.")
@click.option("--encrypted/--no-encrypted", default=None, help="Seal payloads and results of the queue's jobs.")
@click.option("--rate-limit", callback=_rate_limit, help="At most N jobs start in any SECONDS: N/SECONDS.")
@click.option("--weight", type=int, help="1-100: share of takes when a worker consumes several queues.")
@click.option("--max-pending", type=int, help="A dispatch beyond this many pending jobs is refused (429).")
@click.option(
    "--clear",
    "clear",
    multiple=True,
    type=click.Choice(queue_settings.EDITABLE),
    help="Clear a setting (the code's or Celeriac's default applies again); repeatable.",
)
def queues_settings(queue: str, clear: tuple[str, ...], **given: Any) -> None:
    """Show QUEUE's settings, or change the ones given (the rest stay as they are)."""
    changes = {key: value for key, value in given.items() if value is not None}
    both = sorted(set(changes) & set(clear))
    if both:
        raise click.UsageError(f"{', '.join(both)}: give a value or --clear, not both")
    changes.update(dict.fromkeys(clear))
    try:
        if changes:
            view = queue_actions.update_queue_settings(queue, changes, "cli", record_cli_action)
        else:
            view = queue_actions.queue_view(queue)
    except AppError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(_summary(view))
