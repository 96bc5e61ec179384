"""Task messages for Celeriac's own dispatches, built as Celery 5.7's `send_task` builds them.

`send_task` spends about 0.3 ms of Python on each message: the router, `as_task_v2`, a safe
repr of the arguments, kombu's producer with its retry wrapper, and a new Redis client for
every publish. A dispatch knows its message before its transaction starts, and a batch sends
thousands of the same kind, so here:

- `Route` is what Celery decides once per kind of message (task, queue, priority, time
  limits, encrypted or not): the task's own options merged in, the router's answer, the
  exchange, routing key, delivery mode and serializer (`send_task`, `send_task_message`).
- `build` makes one message from its kind's template (Celery's own `as_task_v2` output),
  changing what differs per message: id, arguments and their repr, ETA, expiry, root and
  parent, the custom headers; the body is serialized by kombu's own serializer.

What kombu does next (the Redis list entry) is kombu's own code, in
app.backends.celery_publisher. tests/unit/test_celery_messages.py puts the same jobs into
Redis through `apply_async` and through here and compares the entries field by field.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from celery import Celery
from celery.app.routes import MapRoute
from celery.utils.time import add_seconds_to_datetime, maybe_make_aware  # type: ignore[attr-defined]
from kombu.common import Broadcast
from kombu.serialization import dumps, registry  # type: ignore[attr-defined]
from kombu.utils import json as kombu_json

from app.backends.arguments_repr import arguments_repr

#: `send_task` options this module understands; any other sends the message through Celery.
SUPPORTED_OPTIONS = frozenset(
    {"task_id", "queue", "priority", "headers", "countdown", "expires", "time_limit", "soft_time_limit"}
    | {"argsrepr", "kwargsrepr", "retry_policy"}
)
#: kombu's JSON encoder, made once (the same class kombu's `dumps` instantiates per call).
_encode_json = kombu_json.JSONEncoder().encode
#: Placeholder id of the template message (never sent).
_TEMPLATE_ID = "00000000-0000-0000-0000-000000000000"
#: The body's third element for a task without links (callbacks, errbacks, chain, chord).
_NO_LINKS = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@dataclass(frozen=True)
class Route:
    """Where and how every message of one kind goes (Celery's decisions, made once)."""

    exchange: str
    routing_key: str
    declare: tuple[Any, ...]
    delivery_mode: Any
    serializer: str
    compression: str | None
    retry_policy: dict[str, Any]
    #: `send_task_message`'s leftover options, which Celery puts in the message properties.
    properties: dict[str, Any]
    #: The task's own expiry (seconds or a datetime) when the dispatch names none.
    default_expires: Any
    #: `as_task_v2`'s headers for this kind, with a placeholder id.
    headers: dict[str, Any] = field(repr=False)


@dataclass
class Outgoing:
    """One message as Celery hands it to kombu's `Producer.publish`, body already serialized."""

    job_id: str
    name: str
    route: Route
    #: (args, kwargs, links): what `before_task_publish` receivers see.
    body: tuple[Any, ...]
    headers: dict[str, Any]
    properties: dict[str, Any]
    content_type: str
    content_encoding: str
    payload: Any


@dataclass(frozen=True)
class _AppSettings:
    """What `build` reads from the app's configuration (read once: `app.conf` lookups are slow)."""

    supported: bool
    argsrepr_maxsize: int
    kwargsrepr_maxsize: int
    repr_maxlevels: int


@lru_cache(maxsize=8)
def _settings(app: Celery) -> _AppSettings:
    conf = app.conf
    return _AppSettings(
        supported=(
            not conf.task_send_sent_event
            and conf.task_protocol != 1
            and all(isinstance(route, MapRoute) for route in app.amqp.routes)
        ),
        argsrepr_maxsize=app.amqp.argsrepr_maxsize,
        kwargsrepr_maxsize=app.amqp.kwargsrepr_maxsize,
        repr_maxlevels=conf.task_repr_maxlevels,
    )


def is_supported(app: Celery, options: Mapping[str, Any]) -> bool:
    """Whether `build` makes this message exactly as Celery would (else use `send_task`):
    no sent events, protocol 2, routes that depend on the task's name only."""
    return _settings(app).supported and options.keys() <= SUPPORTED_OPTIONS


def build(
    app: Celery, name: str, args: Sequence[Any] | None, kwargs: Mapping[str, Any], options: Mapping[str, Any]
) -> Outgoing:
    """The message `app.send_task(name, args, kwargs, **options)` would publish (see Builder)."""
    return Builder(app).build(name, args, kwargs, options)


class Builder:
    """Builds messages in one context: this thread's reply-to id and the task running here
    (whose children they become), read once however many messages follow."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.settings = _settings(app)
        self.reply_to = app.thread_oid
        parent = app.current_worker_task
        self.root_id: str | None = None
        self.parent_id: str | None = None
        if parent is not None:
            self.root_id = parent.request.root_id or parent.request.id
            self.parent_id = parent.request.id
        self.pid = os.getpid()

    def build(
        self, name: str, args: Sequence[Any] | None, kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> Outgoing:
        """The message `app.send_task(name, args, kwargs, **options)` would publish.

        `options` are those of `is_supported`; the message's routing comes from its kind's
        `Route`, made by Celery's router the first time this process sends that kind.
        """
        app, settings = self.app, self.settings
        route = route_for(app, name, _kind(options), self.pid)
        job_id = options["task_id"]
        values = dict(kwargs)
        headers = dict(route.headers)
        headers["id"] = job_id
        headers["root_id"] = self.root_id or job_id
        headers["parent_id"] = self.parent_id
        headers["timelimit"] = list(headers["timelimit"])
        headers["stamps"] = {}
        levels = settings.repr_maxlevels
        if "argsrepr" in options:
            headers["argsrepr"] = options["argsrepr"]
        else:
            headers["argsrepr"] = arguments_repr(args or (), settings.argsrepr_maxsize, levels)
        if "kwargsrepr" in options:
            headers["kwargsrepr"] = options["kwargsrepr"]
        else:
            headers["kwargsrepr"] = arguments_repr(values, settings.kwargsrepr_maxsize, levels)
        properties: dict[str, Any] = {"correlation_id": job_id, "reply_to": self.reply_to, **route.properties}
        for key in ("argsrepr", "kwargsrepr"):
            if key in options:
                properties[key] = options[key]  # Celery passes them on as message properties too
        _add_times(app, headers, properties, options.get("countdown"), options.get("expires", route.default_expires))
        custom = options.get("headers")
        if custom:
            headers.update(custom)
        body = (list(args) if isinstance(args, list) else tuple(args or ()), values, dict(_NO_LINKS))
        content_type, content_encoding, payload = serialize(body, route.serializer)
        return Outgoing(job_id, name, route, body, headers, properties, content_type, content_encoding, payload)


def serialize(body: Any, serializer: str) -> tuple[str, str, Any]:
    """kombu's `dumps(body, serializer)`; for kombu's own JSON, with one encoder made once
    (kombu's `dumps` builds a new one per message): the same text."""
    codec = registry._encoders.get(serializer)
    if codec is not None and codec.encoder is kombu_json.dumps:
        return codec.content_type, codec.content_encoding, _encode_json(body)
    content_type, content_encoding, payload = dumps(body, serializer=serializer)
    return content_type, content_encoding, payload


def _add_times(app: Celery, headers: dict[str, Any], properties: dict[str, Any], countdown: Any, expires: Any) -> None:
    """ETA and expiry as `as_task_v2` writes them, and `send_task`'s expiration property."""
    if not countdown and expires is None:
        return
    now = app.now()
    if countdown:
        headers["eta"] = maybe_make_aware(add_seconds_to_datetime(now, countdown), tz=app.timezone).isoformat()
    if expires is None:
        return
    if isinstance(expires, datetime):
        expires_s = (expires - now).total_seconds()
        headers["expires"] = expires.isoformat()
    else:
        expires_s = float(expires)
        headers["expires"] = maybe_make_aware(add_seconds_to_datetime(now, expires), tz=app.timezone).isoformat()
    properties["expiration"] = max(expires_s, 0)


def _kind(options: Mapping[str, Any]) -> tuple[Any, ...]:
    """What decides a message's route and template: everything but the per-message values."""
    policy = options.get("retry_policy")
    return (
        options.get("queue"),
        options.get("priority"),
        options.get("time_limit"),
        options.get("soft_time_limit"),
        "argsrepr" in options,
        "kwargsrepr" in options,
        tuple(sorted(policy.items())) if policy else None,
    )


@lru_cache(maxsize=512)
def route_for(app: Celery, name: str, kind: tuple[Any, ...], pid: int) -> Route:
    """Celery's routing of one kind of message (`send_task` and `send_task_message`, 5.7)."""
    queue, priority, time_limit, soft_time_limit, sealed_args, sealed_kwargs, policy = kind
    options: dict[str, Any] = {"queue": queue} if queue is not None else {}
    if priority is not None:
        options["priority"] = priority
    if sealed_args:
        options["argsrepr"] = ""
    if sealed_kwargs:
        options["kwargsrepr"] = ""
    task = app._tasks.get(name)  # type: ignore[attr-defined]  # as send_task: no finalize
    get_exec_options = getattr(task, "_get_exec_options", None)
    if get_exec_options is not None and inspect.ismethod(get_exec_options):
        defaults = {k: v for k, v in (get_exec_options() or {}).items() if v is not None}
        options = dict(defaults, **options)
    time_limit = time_limit if time_limit is not None else options.pop("time_limit", None)
    soft_time_limit = soft_time_limit if soft_time_limit is not None else options.pop("soft_time_limit", None)
    options.pop("time_limit", None)
    options.pop("soft_time_limit", None)
    default_expires = options.pop("expires", None)
    ignore_result = options.pop("ignore_result", None)
    options = app.amqp.router.route(options, name, (), {}, task)
    template = app.amqp.as_task_v2(
        _TEMPLATE_ID, name, (), {},
        reply_to="", time_limit=time_limit, soft_time_limit=soft_time_limit,
        ignore_result=ignore_result, argsrepr="", kwargsrepr="",
    )  # fmt: skip
    return _route(app, options, template.headers, default_expires, dict(policy) if policy else None)


def _route(
    app: Celery, options: dict[str, Any], headers: dict[str, Any], default_expires: Any, policy: dict[str, Any] | None
) -> Route:
    """`send_task_message`'s part: exchange, routing key, delivery mode, declarations."""
    conf = app.conf
    exchange = options.pop("exchange", None)
    routing_key = options.pop("routing_key", None)
    queue = options.pop("queue", None)
    exchange_type = options.pop("exchange_type", None)
    delivery_mode = options.pop("delivery_mode", None)
    serializer = options.pop("serializer", None)
    compression = options.pop("compression", None)
    qname = queue
    if queue is None and exchange is None:
        queue = app.amqp.default_queue
    if queue is not None:
        if isinstance(queue, str):
            qname, queue = queue, app.amqp.queues[queue]
        else:
            qname = queue.name
    if delivery_mode is None:
        delivery_mode = (
            getattr(getattr(queue, "exchange", None), "delivery_mode", None) or conf.task_default_delivery_mode
        )
    if exchange_type is None:
        exchange_type = getattr(getattr(queue, "exchange", None), "type", None) or "direct"
    if (not exchange or not routing_key) and exchange_type == "direct":
        exchange, routing_key = "", qname
    elif exchange is None:
        exchange = queue.exchange.name or app.amqp.default_exchange
        routing_key = routing_key or queue.routing_key or conf.task_default_routing_key
    declare = (queue,) if queue is not None and not isinstance(queue, Broadcast) else ()
    default_policy = conf.task_publish_retry_policy
    return Route(
        exchange=exchange.name if hasattr(exchange, "name") else exchange,
        routing_key=routing_key,
        declare=declare,
        delivery_mode=delivery_mode,
        serializer=serializer or conf.task_serializer,
        compression=compression or conf.task_compression,
        retry_policy=dict(default_policy, **policy) if policy else dict(default_policy),
        properties=options,
        default_expires=default_expires,
        headers=headers,
    )
