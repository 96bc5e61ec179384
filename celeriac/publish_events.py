"""The `pub` event of a task message, and the publish time stamped on it.

Built for `before_task_publish` (celeriac.signals) and, without the signal's cost, for the
messages Celeriac's own publisher builds (celeriac.own_publish).
"""

from __future__ import annotations

from typing import Any

from celery._state import get_current_app

from celeriac import canvas, header
from celeriac import events as ev
from celeriac.priority import from_broker_priority
from celeriac.retry_limits import declared_max_retries
from celeriac.shape import shape_of_message

#: `publish_event`'s default: look the task up (a caller sending many passes what it knows).
_LOOK_UP: Any = object()


def publish_event(
    sender: str | None,
    body: Any,
    routing_key: str | None,
    headers: dict[str, Any],
    properties: dict[str, Any] | None,
    now: float,
    *,
    task: Any = _LOOK_UP,
    in_chord_callback: bool = True,
) -> dict[str, Any]:
    """The `pub` event of a task message; stamps its publish time, which the reconciler
    orders a queue's messages by, in `headers`.

    `task`: the registered task, when the caller knows it; `in_chord_callback`: False when
    the caller knows no chord header is publishing its callback from here (no task runs).
    """
    headers[header.PUBLISHED_AT] = now
    task_name = headers.get("task") or sender or "unknown"
    event = ev.published(
        job_id=headers["id"],
        task=task_name,
        queue=routing_key or "default",
        priority=from_broker_priority((properties or {}).get("priority")),
        payload=ev.payload_from_body(body),
        retries=int(headers.get("retries") or 0),
        eta=headers.get("eta"),
        expires=headers.get("expires"),
        parent_id=headers.get("parent_id"),
        root_id=headers.get("root_id"),
        celeriac=header.read_or_empty(headers),
        shape=shape_of_message(headers, body),
        ts=now,
        group_id=canvas.member_group_of_headers(headers),
    )
    chord = canvas.chord_header_of(headers["id"]) if in_chord_callback else None
    if chord is not None:
        event["chord"] = chord  # the callback of this chord header: see celeriac.canvas
    add_retry_limit(event, registered_task(task_name) if task is _LOOK_UP else task)
    return event


def registered_task(name: str) -> Any:
    """The task `name` in this process's Celery app, if it is loaded (never loads it)."""
    app = get_current_app()
    return app.tasks.get(name) if getattr(app, "finalized", False) else None


def add_retry_limit(event: dict[str, Any], task: Any) -> None:
    """`mr`: the plain task's `max_retries` (None: no limit), for its max_attempts;
    a Celeriac Job's header says it already (celeriac.retry_limits)."""
    known, max_retries = declared_max_retries(task)
    if known:
        event["mr"] = max_retries
