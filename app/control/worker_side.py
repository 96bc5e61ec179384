"""Pauses enforced inside every worker: at start-up and by a small reconcile thread.

The pause broadcast (`cancel_consumer`) only reaches workers that are up and listening when
it is sent. So each worker also checks the registry itself: on `worker_ready` (in the
consumer's own thread, before its loop fetches anything) it cancels the consumers of paused
queues, and a daemon thread in the main process re-reads the registry every
CELERIAC_QUEUE_PAUSE_CHECK_S seconds, cancelling consumers of paused queues and re-adding
those it wants again once resumed. The thread never touches kombu objects itself: it hands
`cancel_task_queue` / `add_task_queue` to the consumer's event loop with `call_soon` (what
Celery's own remote-control commands do; kombu's hub wakes its poller for callbacks from
other threads), so consumers change only in the consumer's thread.

Messages a worker had already reserved (prefetched) before a pause still run: a pause
stops fetching, it does not take messages back.

The thread also publishes what the worker wants to consume and whether supervisord runs it
(`redis_keys.worker_control`), which resume (targeted `add_consumer`) and restart read.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery import signals

from app import redis_keys
from app.config import Settings, get_settings
from app.control import pauses
from app.redis_client import get_redis

logger = logging.getLogger(__name__)

#: A queue that stopped being consumed this soon after a resume was stopped by the pause,
#: not by an operator (a pause and resume both inside one check interval).
SETTLE_S = 30.0


@dataclass(frozen=True)
class Plan:
    """What one reconcile tick decided: the queues wanted, and what to cancel and add now."""

    wanted: frozenset[str]
    cancel: tuple[str, ...]
    add: tuple[str, ...]


def plan(
    current: set[str],
    last: set[str],
    wanted: set[str],
    paused: set[str],
    settling: frozenset[str] | set[str] = frozenset(),
) -> Plan:
    """Decide a tick: `current` is consumed now, `last` was at the previous tick.

    Whatever the worker consumes is wanted (its -Q queues, an operator's add_consumer). A
    queue that stopped being consumed while not paused (nor just resumed) was cancelled by
    an operator: no longer wanted, so resuming its queue does not bring it back.
    """
    keep = set(wanted) | current
    for queue in last - current:
        if queue not in paused and queue not in settling:
            keep.discard(queue)
    return Plan(frozenset(keep), tuple(sorted(current & paused)), tuple(sorted(keep - current - paused)))


def consuming(consumer: Any) -> set[str] | None:
    """Names of the queues the consumer fetches from now; None while it reconnects."""
    task_consumer = getattr(consumer, "task_consumer", None)
    if task_consumer is None:
        return None
    for _ in range(3):  # the consumer's thread may change the dict meanwhile
        try:
            return {q.name for q in task_consumer.queues}
        except RuntimeError:
            continue
    return None


def supervisor_identity(settings: Settings) -> dict[str, str] | None:
    """The program supervisord runs this worker as (from the variables it sets), or None."""
    process = settings.supervisor_process_name
    if not process:
        return None
    group = settings.supervisor_group_name or process
    return {"group": group, "process": process, "name": f"{group}:{process}"}


class QueueReconciler:
    """Keeps one worker's consumers in step with the paused-queue registry."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.settings = get_settings()
        self.hostname: str = consumer.hostname
        started = consuming(consumer) or set()
        self.wanted: set[str] = set(started)
        self.last: set[str] = set(started)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celeriac-queue-pauses", daemon=True)

    def apply_at_start(self) -> None:
        """In the consumer's thread, before its loop runs: drop paused queues at once."""
        paused = pauses.paused_queues(self._redis())
        for queue in sorted(self.last & paused):
            logger.warning("Queue %s is paused: not consuming it until it is resumed", queue)
            self.consumer.cancel_task_queue(queue)
        self.last -= paused
        self._publish(paused)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _redis(self) -> Any:
        return get_redis(self.settings.redis_url)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.queue_pause_check_s):
            try:
                self.tick()
            except Exception:  # a supervised loop: log with the traceback and check again later
                logger.exception("Checking paused queues failed")

    def tick(self, now: float | None = None) -> Plan | None:
        current = consuming(self.consumer)  # read before the registry: see plan()
        if current is None:
            return None
        now = time.time() if now is None else now
        states = pauses.all_states(self._redis())
        paused = {q for q, s in states.items() if s.paused}
        settling = {q for q, s in states.items() if not s.paused and now - s.at < SETTLE_S}
        decided = plan(current, self.last, self.wanted, paused, settling)
        for queue in decided.cancel:
            logger.warning("Queue %s is paused: cancelling its consumer", queue)
            self.consumer.call_soon(self.consumer.cancel_task_queue, queue)
        for queue in decided.add:
            logger.warning("Queue %s is no longer paused: consuming it again", queue)
            self.consumer.call_soon(self.consumer.add_task_queue, queue, None, "direct", None)
        self.wanted = set(decided.wanted)
        self.last = (current - set(decided.cancel)) | set(decided.add)
        self._publish(paused)
        return decided

    def _publish(self, paused: set[str]) -> None:
        state = {
            "hostname": self.hostname,
            "wanted": sorted(self.wanted),
            "held": sorted(self.wanted & paused),
            "pid": os.getpid(),
            "machine": socket.gethostname(),
            "supervisor": supervisor_identity(self.settings),
            "at": time.time(),
        }
        self._redis().set(
            redis_keys.worker_control(self.hostname), json.dumps(state), ex=redis_keys.CONTROL_STATE_TTL_S
        )


_reconciler: QueueReconciler | None = None


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    global _reconciler
    if sender is None:
        return
    try:
        _reconciler = QueueReconciler(sender)
        _reconciler.apply_at_start()
    except Exception:  # Celery only logs receivers' errors without a traceback
        logger.exception("Could not apply paused queues at start-up; the check thread retries")
    if _reconciler is not None:
        _reconciler.start()


def on_worker_shutdown(**_: Any) -> None:
    global _reconciler
    if _reconciler is not None:
        _reconciler.stop()
        _reconciler = None


def connect() -> None:
    signals.worker_ready.connect(on_worker_ready, weak=False)
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False)
