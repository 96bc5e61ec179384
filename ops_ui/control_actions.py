"""Queue and worker control as the API, the console and the CLI perform it: act, then audit.

One place decides what is audited: a done or accepted action with its before / after, and a
command a worker did not answer (it may still apply it). Refused input changes nothing and
writes nothing. `record` is `ops_ui.trail.record_action` in a request, `record_cli_action` in the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.backends.current import backends
from app.control import pauses, queues, workers
from app.errors import BackendUnavailable
from app.redis_client import get_redis
from ops_ui.extensions import sql
from ops_ui.settings import app_settings

Record = Callable[..., None]


def _redis() -> Any:
    return get_redis(app_settings().redis_url)


def _paused_before(name: str) -> dict[str, Any]:
    return {"paused": pauses.is_paused(_redis(), name)}


def pause_queue(name: str, actor: str, reason: str | None, record: Record) -> pauses.PauseState:
    queues.check_queue_name(name)
    before = _paused_before(name)
    state = queues.pause_queue(sql(), _redis(), backends().workers, app_settings(), name, actor, reason)
    record("queue.pause", "queue", name, before=before, after={"paused": True}, reason=reason)
    return state


def resume_queue(name: str, actor: str, reason: str | None, record: Record) -> pauses.PauseState:
    queues.check_queue_name(name)
    before = _paused_before(name)
    state = queues.resume_queue(sql(), _redis(), backends().workers, app_settings(), name, actor, reason)
    record("queue.resume", "queue", name, before=before, after={"paused": False}, reason=reason)
    return state


def worker_command(
    hostname: str, action: str, body: dict[str, Any], record: Record, wait: bool = False
) -> workers.CommandResult:
    audit_action = f"worker.{action.replace('-', '_')}"
    try:
        result = workers.run_command(_redis(), backends().workers, app_settings(), hostname, action, body, wait)
    except BackendUnavailable as exc:
        if action in workers.ACTIONS and "did not answer" in str(exc):
            record(audit_action, "worker", hostname, after={"request": body, "detail": str(exc)}, outcome="no_reply")
        raise
    record(audit_action, "worker", hostname, after={"request": body, **result.as_dict()})
    return result
