"""Changing a queue's settings as the API, the console and the CLI do it: act, then audit.

Refused input changes nothing and writes nothing; a change that changed nothing (every
value already as given) is not audited. `record` is `ops_ui.trail.record_action` in a
request, `record_cli_action` in the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.control import queue_settings
from app.redis_client import get_redis
from ops_ui.extensions import sql
from ops_ui.settings import app_settings

Record = Callable[..., None]

#: The parts of a queue's view an audit entry keeps (not timestamps).
_AUDITED = (*queue_settings.EDITABLE, "sources")


def _redis() -> Any:
    return get_redis(app_settings().redis_url)


def queue_view(name: str) -> dict[str, Any]:
    return queue_settings.queue_view(sql(), _redis(), app_settings(), name)


def update_queue_settings(name: str, changes: dict[str, Any], actor: str, record: Record) -> dict[str, Any]:
    """Save `changes` (left out: unchanged, None: cleared) and audit them; returns the view.

    Raises:
        ValidationError: a bad name, field or value; nothing changes.
        BackendUnavailable: SQL or Redis failed.
    """
    before = queue_view(name)
    after = queue_settings.update_queue(sql(), _redis(), app_settings(), name, changes, actor)
    kept_before = {key: before[key] for key in _AUDITED}
    kept_after = {key: after[key] for key in _AUDITED}
    if kept_before != kept_after:
        record("queue.settings.update", "queue", name, before=kept_before, after=kept_after)
    return after
