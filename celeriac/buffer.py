"""A per-process buffer of execution events, flushed to the Redis stream in batches.

Signal handlers must not block the worker on a network round trip per task, so they
append here; a daemon thread flushes every `flush_ms` or when `max_events` pile up.
If Redis is unreachable the events stay buffered (up to `max_pending`) and are retried;
they are never dropped silently: overflow is logged with the number lost.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import redis

from celeriac import keys as redis_keys

logger = logging.getLogger(__name__)

#: Most events in one stream entry (a flush after an outage is split into several).
EVENTS_PER_ENTRY = 256
#: Events kept in memory while Redis is unreachable, per process.
MAX_PENDING_EVENTS = 100_000


#: One encoder for every event: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))


def encode_event(event: dict[str, Any]) -> str:
    return _ENCODER.encode(event)


class EventBuffer:
    """Collects events and writes them to `stream` with one pipelined round trip."""

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        *,
        max_events: int = 64,
        flush_ms: int = 20,
        stream: str = redis_keys.EVENTS_STREAM,
        max_pending: int = MAX_PENDING_EVENTS,
    ) -> None:
        self._client_factory = client_factory
        self._max_events = max_events
        self._interval_s = flush_ms / 1000.0
        self._stream = stream
        self._max_pending = max_pending
        self._reset_for_process()

    def _reset_for_process(self) -> None:
        self._pid = os.getpid()
        self._events: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None

    def emit(self, event: dict[str, Any]) -> None:
        """Queue one event for the stream. Never raises, never blocks on the network."""
        if os.getpid() != self._pid:
            # A forked child inherits the parent's buffer object but not its thread.
            self._reset_for_process()
        encoded = encode_event(event)
        with self._lock:
            self._events.append(encoded)
            full = len(self._events) >= self._max_events
        if self._thread is None:
            self._start_thread()
        if full:
            self._wake.set()

    def emit_many(self, events: list[dict[str, Any]]) -> None:
        """Queue several events; as `emit`, never raises or blocks on the network."""
        if os.getpid() != self._pid:
            self._reset_for_process()
        encoded = [encode_event(event) for event in events]
        with self._lock:
            self._events.extend(encoded)
            full = len(self._events) >= self._max_events
        if self._thread is None:
            self._start_thread()
        if full:
            self._wake.set()

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="celeriac-event-flusher", daemon=True)
            self._thread.start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write everything buffered now; returns the number written (0 on failure)."""
        with self._lock:
            batch, self._events = self._events, []
        if not batch:
            return 0
        try:
            client = self._client or self._client_factory()
            self._client = client
            pipe = client.pipeline(transaction=False)
            # One stream entry per flush, not per event: one XADD to send, one entry for
            # the recorder to parse, acknowledge and delete (field "b": a JSON list).
            for start in range(0, len(batch), EVENTS_PER_ENTRY):
                pipe.xadd(self._stream, {"b": "[" + ",".join(batch[start : start + EVENTS_PER_ENTRY]) + "]"})
            pipe.execute()
        except Exception:  # process boundary: keep the events, say so, retry next tick
            logger.exception("Event buffer: %d events not written yet; will retry", len(batch))
            self._client = None
            self._requeue(batch)
            return 0
        return len(batch)

    def _requeue(self, batch: list[str]) -> None:
        with self._lock:
            self._events = batch + self._events
            overflow = len(self._events) - self._max_pending
            if overflow > 0:
                logger.error(
                    "Event buffer full: %d execution events dropped; history is incomplete",
                    overflow,
                )
                self._events = self._events[overflow:]

    def pending(self) -> int:
        with self._lock:
            return len(self._events)
