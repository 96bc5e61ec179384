"""The production publisher: Celeriac's jobs as Celery sends them, at the broker's pace.

A message is built as Celery's `send_task` would (app.backends.celery_messages), ideally
before the job's row is written (`prepare`); after the commit, `before_task_publish` runs
(celeriac.own_publish), kombu's own channel code turns each message into its Redis list
entry, and the entries go out pipelined, one round trip per PUSH_CHUNK messages, on a
Redis client kept for each pooled broker connection (kombu builds a new client for every
publish, which costs more than the publish). What the builder does not cover goes through
Celery's `send_task`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from celery import signals as celery_signals
from kombu import Producer
from kombu.pools import producers

from app.backends import celery_messages
from app.backends.celery_messages import Builder, Outgoing, serialize
from app.backends.redis_entries import Commands, EntryMaker
from app.broker import celery_app
from app.config import get_settings
from app.kernel.dispatching import ResolvedJob
from celeriac.own_publish import announce, only_celeriac_listens, prepare_events
from celeriac.publish import QUICK_RETRY_POLICY, repr_options, send

logger = logging.getLogger(__name__)

#: One reconnect on a broken connection, no more: a dispatch answers within about twice
#: CELERIAC_PUBLISH_TIMEOUT_S when Redis is down.
PUBLISH_RETRY_POLICY = QUICK_RETRY_POLICY
#: Messages per pipelined round trip of a bulk publish. When the broker fails part-way, the
#: chunks acknowledged before are known to be in Redis; the jobs of the others stay pending
#: and the reconciler publishes those whose message is missing.
PUSH_CHUNK = 2000


@lru_cache(maxsize=2)
def _dispatch_producers(pid: int) -> Any:
    """Producers over broker connections that give up after CELERIAC_PUBLISH_TIMEOUT_S.

    Only dispatch uses them: a frozen or unreachable Redis answers the caller in seconds
    (503) instead of hanging it, while workers keep their own, patient connections.
    """
    timeout = get_settings().reliability.publish_timeout_s
    connection = celery_app.connection_for_write(
        connect_timeout=timeout,
        transport_options={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
    return producers[connection]


def dispatch_producer() -> Any:
    """A producer from this process's dispatch pool (a context manager)."""
    return _dispatch_producers(os.getpid()).acquire(block=True, timeout=get_settings().reliability.publish_timeout_s)


class PublishError(Exception):
    """A bulk publish stopped part-way; `sent` jobs are known to have reached the broker."""

    def __init__(self, sent: int, cause: BaseException) -> None:
        super().__init__(f"{cause}")
        self.sent = sent


@dataclass
class Prepared:
    """Jobs' messages built ahead of their publish, with Celeriac's `before_task_publish`
    work where it can be done ahead (`events`; None: the signal runs at publish time)."""

    published_at: float
    messages: dict[str, Outgoing]
    events: dict[str, dict[str, Any]] | None
    #: False: a job needs Celery's `send_task` (an option the builder does not cover).
    complete: bool


class CeleryPublisher:
    """Publishes through the Celery app's broker connection pool (see the module docstring)."""

    def __init__(self) -> None:
        #: This thread's message built by `prepare`, sent by the next `publish` of that job.
        self._prepared = threading.local()

    def prepare(self, job: ResolvedJob, published_at: float) -> None:
        """Build `job`'s message now, before its row's transaction; the next `publish(job)`
        in this thread sends it, stamped `published_at` (the time the row records)."""
        self._prepared.slot = (job.job_id, self.prepare_many([job], published_at))

    def prepare_many(self, jobs: Sequence[ResolvedJob], published_at: float) -> Prepared:
        """Build the jobs' messages now (their rows are being written meanwhile), for
        `publish_many(..., prepared=...)` once the rows are committed."""
        builder = Builder(celery_app)
        messages: dict[str, Outgoing] = {}
        for job in jobs:
            message = _message(job, builder)
            if message is None:
                return Prepared(published_at, {}, None, False)
            messages[job.job_id] = message
        arguments = [_signal_arguments(message) for message in messages.values()]
        events = prepare_events(arguments, published_at, builder.parent_id is not None)
        by_id = None if events is None else {event["id"]: event for event in events}
        return Prepared(published_at, messages, by_id, True)

    def publish(self, job: ResolvedJob, producer: Any = None) -> None:
        """Send one job now (its prepared message, if `prepare` made one in this thread).

        Raises:
            Exception: whatever the broker raised, after one reconnect.
        """
        slot = getattr(self._prepared, "slot", None)
        self._prepared.slot = None
        prepared = slot[1] if slot is not None and slot[0] == job.job_id else None
        if prepared is None:
            prepared = self.prepare_many([job], time.time()) if producer is None else None
            published_at = None
        else:
            published_at = prepared.published_at
        if prepared is None or not prepared.complete:
            _send_task(job, producer)
            return
        message = prepared.messages[job.job_id]
        events = None if prepared.events is None else list(prepared.events.values())
        try:
            push([message], published_at, events)
        except redis.ConnectionError as exc:
            # A pooled connection Redis closed since (a restart): one reconnect, as Celery's
            # own publish retries once (PUBLISH_RETRY_POLICY).
            logger.info("Job %s: broker connection lost (%s); publishing again", job.job_id, exc)
            push([message], published_at, announced=True)

    def publish_many(
        self, jobs: Sequence[ResolvedJob], published_at: float | None = None, prepared: Prepared | None = None
    ) -> int:
        """Publish in order, pipelined; returns how many were sent.

        Raises:
            PublishError: the broker failed; `sent` messages are known to be in Redis.
        """
        if prepared is None:
            prepared = self.prepare_many(jobs, published_at if published_at is not None else time.time())
        if not prepared.complete:
            return _send_each(jobs)
        messages = [prepared.messages[job.job_id] for job in jobs]
        events = None if prepared.events is None else [prepared.events[job.job_id] for job in jobs]
        return push(messages, prepared.published_at, events)


def _message(job: ResolvedJob, builder: Builder) -> Outgoing | None:
    """`job`'s message as Celery would build it, or None when `send_task` must build it."""
    options = {**repr_options(job.encrypted), **job.celery_options()}
    if not celery_messages.is_supported(celery_app, options):
        return None
    return builder.build(job.job_class, job.args, job.wire_payload(), options)


def push(
    messages: Sequence[Outgoing],
    published_at: float | None,
    events: Sequence[dict[str, Any]] | None = None,
    announced: bool = False,
) -> int:
    """Announce (`before_task_publish`; `events`: its work done ahead) and push `messages`;
    returns how many were sent.

    Raises:
        PublishError: for several messages, after `sent` of them; else what Redis raised.
    """
    if not announced:
        stamp = published_at if published_at is not None else time.time()
        arguments = [] if events is not None else [_signal_arguments(message) for message in messages]
        announce(arguments, stamp, events)
        if events is None and not only_celeriac_listens():
            # Another library's receiver may have changed a body (Celery serializes after
            # the signal): serialize again, as Celery would.
            for message in messages:
                message.content_type, message.content_encoding, message.payload = serialize(
                    message.body, message.route.serializer
                )
    sent = 0
    try:
        lane = _lane()
        lane.declare({entity for message in messages for entity in message.route.declare})
        for start in range(0, len(messages), PUSH_CHUNK):
            chunk = messages[start : start + PUSH_CHUNK]
            commands = Commands()
            for message in chunk:
                lane.entries.add(message, commands)
            _execute(commands, lane.client)
            sent += len(chunk)
    except Exception as exc:
        if len(messages) == 1:
            raise
        raise PublishError(sent, exc) from exc
    _after_publish(messages)
    return sent


def _signal_arguments(message: Outgoing) -> dict[str, Any]:
    route = message.route
    return {
        "sender": message.name,
        "body": message.body,
        "exchange": route.exchange,
        "routing_key": route.routing_key,
        "declare": list(route.declare),
        "headers": message.headers,
        "properties": message.properties,
        "retry_policy": route.retry_policy,
    }


def _after_publish(messages: Sequence[Outgoing]) -> None:
    """What Celery does after each publish: `after_task_publish`, the parent task's trail."""
    if celery_signals.after_task_publish.receivers:
        for message in messages:
            route = message.route
            celery_signals.after_task_publish.send(
                sender=message.name,
                body=message.body,
                headers=message.headers,
                exchange=route.exchange,
                routing_key=route.routing_key,
            )
    parent = celery_app.current_worker_task
    if parent is not None:
        for message in messages:
            result = celery_app.AsyncResult(message.job_id)
            result.ignored = None  # type: ignore[assignment]  # as send_task sets it
            parent.add_trail(result)


def _execute(commands: Commands, client: Any) -> None:
    """One pipelined round trip; consecutive LPUSHes to one list become one LPUSH of several
    values, which Redis applies in the same order."""
    pipe = client.pipeline(transaction=False)
    pending_key: Any = None
    values: list[Any] = []
    for name, args in commands.commands:
        if name == "lpush" and args[0] == pending_key:
            values.append(args[1])
            continue
        if values:
            pipe.lpush(pending_key, *values)
            pending_key, values = None, []
        if name == "lpush":
            pending_key, values = args[0], [args[1]]
        else:
            getattr(pipe, name)(*args)
    if values:
        pipe.lpush(pending_key, *values)
    pipe.execute()


class _Lane:
    """This process's way to the broker for pushes: a kombu channel (for declarations and
    the entries' templates) and its Redis client, shared by every thread (the client's pool
    is thread-safe; declarations take a lock). No pool acquire per publish."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool  # kept: a cleared producer pool (tests switch brokers) means a new lane
        self.connection = pool.connections.connection.clone()
        self.channel = self.connection.default_channel
        self.producer = Producer(self.channel)
        self.client = self.channel._create_client()
        self.entries = EntryMaker(self.producer, self.channel)
        self._lock = threading.Lock()
        self._declared: set[Any] = set()

    def declare(self, entities: set[Any]) -> None:
        """Declare the queues (once each here; kombu caches them per connection too)."""
        missing = entities - self._declared
        if not missing:
            return
        with self._lock:
            for entity in missing:
                self.producer.maybe_declare(entity)
                self._declared.add(entity)


_lanes: dict[int, _Lane] = {}
_lanes_lock = threading.Lock()


def _lane() -> _Lane:
    pool = _dispatch_producers(os.getpid())
    lane = _lanes.get(id(pool))
    if lane is None or lane.pool is not pool:
        with _lanes_lock:
            lane = _lanes.get(id(pool))
            if lane is None or lane.pool is not pool:
                lane = _Lane(pool)
                _lanes.clear()
                _lanes[id(pool)] = lane
    return lane


def _send_task(job: ResolvedJob, producer: Any = None) -> None:
    if producer is None:
        with dispatch_producer() as pooled:
            _send_task(job, pooled)
        return
    send(
        celery_app,
        job.job_class,
        args=job.args,
        kwargs=job.wire_payload(),
        options=job.celery_options(),
        sealed=job.encrypted,
        producer=producer,
        retry_policy=PUBLISH_RETRY_POLICY,
    )


def _send_each(jobs: Sequence[ResolvedJob]) -> int:
    """One `send_task` per job over one connection (messages the builder does not cover)."""
    sent = 0
    try:
        with dispatch_producer() as producer:
            for job in jobs:
                _send_task(job, producer)
                sent += 1
    except Exception as exc:  # broker boundary: the caller decides about the rest
        raise PublishError(sent, exc) from exc
    return sent
