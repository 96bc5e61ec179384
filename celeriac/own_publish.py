"""`before_task_publish` for the messages Celeriac's own publisher builds (app.backends).

Celery sends the signal once per message; its dispatch alone costs about 20 µs before any
receiver runs, and a batch sends thousands. When Celeriac's receiver is the only one
connected, its work (the publish time on the message, the `pub` event) is done here in one
pass, the events handed to the buffer together. With any other receiver connected (tracing,
error reporting), every message goes through the signal exactly as Celery sends it.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from celery import signals as celery_signals
from celery._state import get_current_worker_task

from celeriac import signals
from celeriac.publish_events import publish_event, registered_task


def receivers() -> list[Any]:
    """The live receivers of `before_task_publish`, whatever sender they listen to."""
    found = []
    for _key, receiver in celery_signals.before_task_publish.receivers:
        if isinstance(receiver, weakref.ReferenceType):
            receiver = receiver()
        if receiver is not None:
            found.append(receiver)
    return found


def only_celeriac_listens() -> bool:
    """No receiver but Celeriac's own (or none at all) is connected."""
    return all(receiver is signals.on_before_publish for receiver in receivers())


def announce(
    messages: Sequence[Mapping[str, Any]], published_at: float, events: Sequence[dict[str, Any]] | None = None
) -> None:
    """Send `before_task_publish` for `messages` (each the signal's keyword arguments:
    sender, body, exchange, routing_key, declare, headers, properties, retry_policy),
    all published at `published_at`, the time their rows record.

    `events`: what `own_events` made for them beforehand (their headers stamped already).
    """
    if events is not None:
        signals.emit_many(list(events))
        return
    connected = receivers()
    if not connected:
        return
    if connected != [signals.on_before_publish]:
        send = celery_signals.before_task_publish.send
        for message in messages:
            send(celeriac_published_at=published_at, **message)
        return
    signals.emit_many(own_events(messages, published_at, get_current_worker_task() is not None))


def prepare_events(
    messages: Sequence[Mapping[str, Any]], published_at: float, in_worker_task: bool
) -> list[dict[str, Any]] | None:
    """`announce`'s work done ahead, where it can be: the events to pass it later, or None
    when another library's receiver listens (the signal then runs at `announce`)."""
    connected = receivers()
    if not connected:
        return []
    if connected != [signals.on_before_publish]:
        return None
    return own_events(messages, published_at, in_worker_task)


def own_events(
    messages: Sequence[Mapping[str, Any]], published_at: float, in_worker_task: bool
) -> list[dict[str, Any]]:
    """Celeriac's receiver's work for `messages`, without the signal: each one's publish time
    stamped, and its `pub` event (to emit with `announce` once the jobs are recorded).

    `in_worker_task`: the caller runs inside a worker's task (else no chord callback can be
    among the messages: celeriac.canvas).
    """
    tasks: dict[str, Any] = {}
    events = []
    for message in messages:
        headers = message["headers"]
        if "id" not in headers:
            continue
        name = headers.get("task") or message["sender"] or "unknown"
        if name not in tasks:
            tasks[name] = registered_task(name)
        event = publish_event(
            message["sender"],
            message["body"],
            message["routing_key"],
            headers,
            message["properties"],
            published_at,
            task=tasks[name],
            in_chord_callback=in_worker_task,
        )
        events.append(event)
    return events
