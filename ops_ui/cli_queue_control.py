"""`flask queue pause|resume QUEUE|--all` and `flask queue status`: who may fetch from a queue.

The same act-then-audit as the API and the console (ops_ui.control_actions): a pause holds
across worker restarts until resumed, and each queue paused or resumed is audited with actor
"cli". Registered in ops_ui/cli_queue.py.
"""

from __future__ import annotations

import time
from typing import Any

import click

from app.control import pauses
from app.control.queues import configured_queues
from app.errors import AppError
from app.monitoring.metrics import known_queues
from app.redis_client import get_redis
from ops_ui import control_actions
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_cli_action

reason_option = click.option("--reason", default=None, help="Why: kept in the audit log.")


def redis_client() -> Any:
    return get_redis(app_settings().redis_url)


def every_queue() -> list[str]:
    """Queues with jobs now or in the last day, plus the standard, consumed, limited and paused ones."""
    return sorted(set(known_queues(sql(), None)) | configured_queues(redis_client(), app_settings()))


def _chosen(name: str | None, every: bool) -> None:
    if (name is None) == (not every):
        raise click.UsageError("give a QUEUE or --all (not both)")


@click.command("pause")
@click.argument("name", metavar="QUEUE", required=False)
@click.option("--all", "every", is_flag=True, help="Every known queue that is not paused.")
@reason_option
def queue_pause(name: str | None, every: bool, reason: str | None) -> None:
    """Stop every worker fetching from QUEUE (held across worker restarts) until resumed."""
    _chosen(name, every)
    paused = pauses.paused_queues(redis_client())
    names = [name] if name is not None else [q for q in every_queue() if q not in paused]
    if not names:
        click.echo("Every known queue is paused already.")
    for each in names:
        _act(lambda q=each: control_actions.pause_queue(q, "cli", reason, record_cli_action))
        click.echo(f"Paused {each}: workers stop fetching from it within seconds (reserved messages still run).")


@click.command("resume")
@click.argument("name", metavar="QUEUE", required=False)
@click.option("--all", "every", is_flag=True, help="Every paused queue.")
@reason_option
def queue_resume(name: str | None, every: bool, reason: str | None) -> None:
    """Let the workers that consumed QUEUE fetch from it again."""
    _chosen(name, every)
    names = [name] if name is not None else sorted(pauses.paused_queues(redis_client()))
    if not names:
        click.echo("No queue is paused.")
    for each in names:
        _act(lambda q=each: control_actions.resume_queue(q, "cli", reason, record_cli_action))
        click.echo(f"Resumed {each}.")


def _act(call: Any) -> Any:
    try:
        return call()
    except AppError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("status")
def queue_status() -> None:
    """Every known queue, paused or not, with who paused it and why."""
    states = pauses.all_states(redis_client())
    for name in every_queue():
        state = states.get(name)
        if state is not None and state.paused:
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(state.at))
            why = f": {state.reason}" if state.reason else ""
            click.echo(f"{name}  paused by {state.by} since {since}{why}")
        else:
            click.echo(f"{name}  running")
