"""Heartbeats of an instrumented worker: what it runs and holds, for the console and the reconciler.

A project's worker started from its own Celery app (`celeriac.instrument`) writes the same
registry entry as Celeriac's own workers (`app.monitoring.workers.Heartbeat`, read by the
workers page and by the reconciler): the ids it holds matter most, because the reconciler
treats a running or reserved job that no live worker holds as lost and publishes it again.

A daemon thread in the worker's main process, started on `worker_ready` and stopped on
`worker_shutdown` (with a last beat saying it stopped). It reads counters Celery keeps
(`celery.worker.state`) and writes one Redis key per beat: a slow Redis delays beats,
never acknowledgements. Memory comes from procfs (no psutil here): the main process and
its pool children; 0 where there is no procfs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from celery import signals
from celery.worker import state

from celeriac.keys import PREFIX

logger = logging.getLogger(__name__)

#: Sorted set of worker hostnames by last heartbeat (app.redis_keys.WORKERS).
WORKERS = PREFIX + "workers"
#: How long a worker's entry outlives its last beat, in seconds (CELERIAC_WORKER_FORGET_AFTER_S).
FORGET_AFTER_S = 3600
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def worker_key(hostname: str) -> str:
    """JSON of a worker's last heartbeat (app.redis_keys.worker)."""
    return f"{PREFIX}worker:{hostname}"


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of process `pid` (this one) and its children, in MB."""
    pid = os.getpid() if pid is None else pid
    total = _rss_bytes(pid) + sum(_rss_bytes(child) for child in _children(pid))
    return round(total / (1024 * 1024), 1)


def _copy(read: Callable[[], Any], empty: Any) -> Any:
    # The consumer thread changes Celery's state meanwhile: copy, and retry if it did.
    for _ in range(3):
        try:
            return read()
        except RuntimeError:
            continue
    return empty


def snapshot(consumer: Any, started_at: float, stopped: bool = False) -> dict[str, Any]:
    """One heartbeat, in the registry's JSON shape (app.monitoring.workers.Heartbeat)."""
    now = time.time()
    pool = getattr(consumer, "pool", None)
    pool_size = getattr(pool, "num_processes", None) or getattr(getattr(consumer, "controller", None), "concurrency", 0)
    queues = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
    return {
        "hostname": consumer.hostname,
        "pid": os.getpid(),
        "pool_size": int(pool_size or 0),
        "active": len(state.active_requests),
        "processed": int(_copy(lambda: sum(dict(state.total_count).values()), 0)),
        "queues": sorted({queue.name for queue in queues}),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else [],
        "rss_mb": rss_mb(),
        "started_at": started_at,
        "last_heartbeat": now,
        "stopped_at": now if stopped else None,
        "held": [] if stopped else _copy(lambda: list(state.requests), []),
    }


def write(client: redis.Redis, beat: dict[str, Any], forget_after_s: int = FORGET_AFTER_S) -> None:
    """Store `beat` in one round trip; the entry outlives the worker by `forget_after_s`."""
    pipe = client.pipeline(transaction=True)
    pipe.set(worker_key(beat["hostname"]), json.dumps(beat), ex=forget_after_s)
    pipe.zadd(WORKERS, {beat["hostname"]: beat["last_heartbeat"]})
    pipe.execute()


class HeartbeatThread:
    """Writes the worker's heartbeat every `interval_s` until stopped."""

    def __init__(
        self, consumer: Any, client: Callable[[], redis.Redis], interval_s: float, forget_after_s: int = FORGET_AFTER_S
    ) -> None:
        self.consumer = consumer
        self.client = client
        self.interval_s = interval_s
        self.forget_after_s = forget_after_s
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celeriac-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and write a last heartbeat that says the worker stopped."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.beat(stopped=True)

    def _run(self) -> None:
        while True:
            self.beat(stopped=False)
            if self._stop.wait(self.interval_s):
                return

    def beat(self, stopped: bool) -> None:
        try:
            write(self.client(), snapshot(self.consumer, self.started_at, stopped), self.forget_after_s)
        except Exception:  # a supervised loop: log with the traceback and beat again later
            logger.exception("Worker heartbeat failed")


class Heartbeats:
    """The `worker_ready` / `worker_shutdown` receivers of one process."""

    def __init__(
        self, client: Callable[[], redis.Redis], interval_s: float, forget_after_s: int = FORGET_AFTER_S
    ) -> None:
        self.client = client
        self.interval_s = interval_s
        self.forget_after_s = forget_after_s
        self.thread: HeartbeatThread | None = None

    def on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        if sender is None or self.thread is not None:
            return
        try:
            self.thread = HeartbeatThread(sender, self.client, self.interval_s, self.forget_after_s)
            self.thread.start()
        except Exception:  # Celery only logs receivers' errors without a traceback
            logger.exception("Worker heartbeat thread did not start")

    def on_worker_shutdown(self, **_: Any) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None


_connected: Heartbeats | None = None


def connect(client: Callable[[], redis.Redis], interval_s: float, forget_after_s: int = FORGET_AFTER_S) -> Heartbeats:
    """Beat every `interval_s` seconds in this process's worker (once per process); each
    entry outlives its worker's last beat by `forget_after_s`."""
    global _connected
    if _connected is None:
        _connected = Heartbeats(client, interval_s, forget_after_s)
        signals.worker_ready.connect(_connected.on_worker_ready, weak=False)
        signals.worker_shutdown.connect(_connected.on_worker_shutdown, weak=False)
    return _connected
