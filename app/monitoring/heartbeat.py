"""The worker side of the registry (M2): a daemon thread in the worker's main process.

Started on `worker_ready`, stopped on `worker_shutdown`. It only reads counters Celery
already keeps (celery.worker.state) and writes one Redis key per beat, off the consumer's
thread: a slow Redis delays heartbeats, never acks (CELERY-NOTES.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import psutil
from celery import signals
from celery.worker import state

from app.config import get_settings
from app.monitoring.workers import Heartbeat, write_heartbeat
from app.redis_client import get_redis

logger = logging.getLogger(__name__)


class HeartbeatThread:
    """Writes the worker's heartbeat every interval until stopped."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.settings = get_settings()
        self.started_at = time.time()
        self.process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celeriac-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and write a last heartbeat that says the worker stopped."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._beat(stopped=True)

    def _run(self) -> None:
        interval = self.settings.monitoring.heartbeat_interval_s
        while True:
            self._beat(stopped=False)
            if self._stop.wait(interval):
                return

    def _beat(self, stopped: bool) -> None:
        try:
            write_heartbeat(get_redis(self.settings.redis_url), self.snapshot(stopped), self.settings.monitoring)
        except Exception:  # a supervised loop: log with the traceback and beat again later
            logger.exception("Worker heartbeat failed")

    def snapshot(self, stopped: bool = False) -> Heartbeat:
        now = time.time()
        return Heartbeat(
            hostname=self.consumer.hostname,
            pid=os.getpid(),
            pool_size=_pool_size(self.consumer),
            active=len(state.active_requests),
            processed=_processed(),
            queues=_queues(self.consumer),
            load_average=[round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else [],
            rss_mb=self._rss_mb(),
            started_at=self.started_at,
            last_heartbeat=now,
            stopped_at=now if stopped else None,
            held=[] if stopped else _held(),
        )

    def _rss_mb(self) -> float:
        """The main process and its pool children together: what the machine pays."""
        total = self.process.memory_info().rss
        for child in self.process.children():
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue  # a child replaced meanwhile (max tasks / memory per child)
        return round(float(total) / (1024 * 1024), 1)


def _pool_size(consumer: Any) -> int:
    pool = getattr(consumer, "pool", None)
    size = getattr(pool, "num_processes", None) or getattr(getattr(consumer, "controller", None), "concurrency", 0)
    return int(size or 0)


def _processed() -> int:
    # The consumer thread may add a task name meanwhile: copy, and retry once if it did.
    for _ in range(2):
        try:
            return int(sum(dict(state.total_count).values()))
        except RuntimeError:
            continue
    return 0


def _held() -> list[str]:
    """Ids of the requests this worker holds: running, reserved or waiting for an ETA."""
    # The consumer thread changes the dict meanwhile: copy, and retry once if it did.
    for _ in range(3):
        try:
            return list(state.requests)
        except RuntimeError:
            continue
    return []


def _queues(consumer: Any) -> list[str]:
    task_consumer = getattr(consumer, "task_consumer", None)
    queues = getattr(task_consumer, "queues", None) or []
    return sorted({q.name for q in queues})


_thread: HeartbeatThread | None = None


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    global _thread
    if sender is None or get_settings().monitoring.heartbeat_interval_s <= 0:
        return
    try:
        _thread = HeartbeatThread(sender)
        _thread.start()
    except Exception:  # Celery only logs receivers' errors without a traceback
        logger.exception("Worker heartbeat thread did not start")


def on_worker_shutdown(**_: Any) -> None:
    global _thread
    if _thread is not None:
        _thread.stop()
        _thread = None


def connect() -> None:
    signals.worker_ready.connect(on_worker_ready, weak=False)
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False)
