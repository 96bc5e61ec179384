"""`flask workers status|stop|restart|grow|shrink|add-consumer|cancel-consumer` (W2): the API's
worker control for operators at a shell. Every action is audited with actor "cli"; errors are
one readable line, exit 1. Queue control is `flask queue` (ops_ui/cli_queue.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import click

from app.errors import AppError
from app.monitoring.workers import list_workers
from app.redis_client import get_redis
from ops_ui import control_actions
from ops_ui.settings import app_settings
from ops_ui.trail import record_cli_action

workers = click.Group("workers", help="Show and control Celery workers (admin actions, audited as cli).")

reason_option = click.option("--reason", default=None, help="Why: kept in the audit log.")


def _redis() -> Any:
    return get_redis(app_settings().redis_url)


def _run(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except AppError as exc:
        raise click.ClickException(str(exc)) from exc


def _command(hostname: str, action: str, body: dict[str, Any], wait: bool = False) -> None:
    result = _run(lambda: control_actions.worker_command(hostname, action, body, record_cli_action, wait=wait))
    click.echo(f"{hostname}: {action} {result.status}: {result.detail}")


def _age(seconds: float) -> str:
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


@workers.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as GET /api/admin/queue/workers).")
def workers_status(as_json: bool) -> None:
    """Workers from their heartbeats: online first, then those offline for less than the forget age."""
    found = list_workers(_redis(), app_settings().monitoring)
    if as_json:
        click.echo(json.dumps([w.as_dict() for w in found], indent=2))
        return
    if not found:
        click.echo("No workers. Start one: .venv/bin/celery -A app.celery_app worker -Q default")
        return
    now = time.time()
    for w in sorted(found, key=lambda w: (w.status != "online", w.heartbeat.hostname)):
        hb = w.heartbeat
        click.echo(
            f"{hb.hostname}  {w.status}  beat {_age(now - hb.last_heartbeat)}  pool {hb.pool_size}  "
            f"active {hb.active}  processed {hb.processed}  {hb.rss_mb:.0f} MB  queues {','.join(hb.queues) or '-'}"
        )


@workers.command("stop")
@click.argument("hostname")
@reason_option
def workers_stop(hostname: str, reason: str | None) -> None:
    """Warm shutdown: the worker stops fetching, finishes running tasks and exits."""
    _command(hostname, "shutdown", _with_reason({}, reason))


@workers.command("restart")
@click.argument("hostname")
@reason_option
def workers_restart(hostname: str, reason: str | None) -> None:
    """Restart through supervisord (CELERIAC_SUPERVISOR_URL); waits for running tasks to finish."""
    _command(hostname, "restart", _with_reason({}, reason), wait=True)


def _with_reason(body: dict[str, Any], reason: str | None) -> dict[str, Any]:
    return {**body, "reason": reason} if reason else body


n_option = click.option("-n", "n", type=int, default=1, show_default=True, help="How many processes (1-64).")


@workers.command("grow")
@click.argument("hostname")
@n_option
@reason_option
def workers_grow(hostname: str, n: int, reason: str | None) -> None:
    """Add N processes to the worker's pool."""
    _command(hostname, "pool-grow", _with_reason({"n": n}, reason))


@workers.command("shrink")
@click.argument("hostname")
@n_option
@reason_option
def workers_shrink(hostname: str, n: int, reason: str | None) -> None:
    """Remove N processes from the worker's pool (idle ones first)."""
    _command(hostname, "pool-shrink", _with_reason({"n": n}, reason))


@workers.command("add-consumer")
@click.argument("hostname")
@click.argument("queue")
@reason_option
def workers_add_consumer(hostname: str, queue: str, reason: str | None) -> None:
    """Make the worker fetch from QUEUE too."""
    _command(hostname, "add-consumer", _with_reason({"queue": queue}, reason))


@workers.command("cancel-consumer")
@click.argument("hostname")
@click.argument("queue")
@reason_option
def workers_cancel_consumer(hostname: str, queue: str, reason: str | None) -> None:
    """Make the worker stop fetching from QUEUE (other workers go on)."""
    _command(hostname, "cancel-consumer", _with_reason({"queue": queue}, reason))
