"""Attach mode's side of the recorder process (CELERIAC_ATTACH): the project's unchanged
workers recorded from Celery's task events, as Flower watches them, but into SQL.

Two threads next to the recorder's loop:
- the listener consumes Celery's event exchange (`app.events.Receiver`), translates each
  task event (app.recording.celery_events) and appends it to the recorder's own event
  stream, so the recorder writes it like any worker's: one writer, one order, replays
  recognised. Events Celeriac's own workers send are dropped (their signals record them).
- the switch, unless CELERIAC_ATTACH_ENABLE_EVENTS=false, turns task events on in the
  workers by broadcast, at start and every CELERIAC_ATTACH_ENABLE_EVENTS_S, so workers
  started later are covered. Which queue a job came from, when its producer sends no
  task-sent events, is asked of the worker that received it, the first time it is seen.

On Redis, Celery's events travel by pub/sub: what a worker sends while no listener runs
(the recorder stopped or restarting) is not delivered to anyone. The rows those events
would have moved stay as they were; the reconciler leaves them alone (app.kernel.attached).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis

from app import redis_keys
from app.config import Settings
from app.recording.celery_events import Event, translate
from celeriac.buffer import EventBuffer

logger = logging.getLogger("app.recorder.attach")

#: Seconds a worker gets to answer "which queues do you consume".
REPLY_TIMEOUT_S = 1.0
#: An unknown worker is asked for its queues at most this often (seconds).
LOOKUP_COOLDOWN_S = 30.0
#: Seconds between two reads of Celeriac's own workers (their heartbeat registry).
OWN_WORKERS_REFRESH_S = 10.0
#: Jobs whose queue is remembered from their first event (task-sent names it).
REMEMBERED_QUEUES = 50_000
#: Longest pause before the listener connects again after a broker error, in seconds.
MAX_RECONNECT_S = 10.0


class WorkerDirectory:
    """What the recorder knows of the workers: each one's queues, and which are Celeriac's."""

    def __init__(self, celery: Any, client: redis.Redis, clock: Callable[[], float] = time.monotonic) -> None:
        self.celery = celery
        self.redis = client
        self.clock = clock
        self._queues: dict[str, tuple[str, ...]] = {}
        self._asked: dict[str, float] = {}
        self._own: set[str] = set()
        self._own_read_at: float | None = None
        self._lock = threading.Lock()

    def refresh(self, destination: list[str]) -> list[str]:
        """Ask the workers `destination` (never all: see EventsSwitch.run_once) for their
        queues; returns the project's workers that answered (not Celeriac's own)."""
        inspect = self.celery.control.inspect(destination=destination, timeout=REPLY_TIMEOUT_S)
        replies: dict[str, Any] = inspect.active_queues() or {}
        with self._lock:
            for hostname, queues in replies.items():
                names = (queue.get("name") for queue in queues or [] if isinstance(queue, dict))
                self._queues[hostname] = tuple(name for name in names if isinstance(name, str))
        own = self.own_workers(force=True)
        return sorted(hostname for hostname in replies if hostname not in own)

    def own_workers(self, force: bool = False) -> set[str]:
        """Hostnames of Celeriac's own workers (they write heartbeats; the project's do not)."""
        now = self.clock()
        if force or self._own_read_at is None or now - self._own_read_at > OWN_WORKERS_REFRESH_S:
            names = self.redis.zrange(redis_keys.WORKERS, 0, -1)
            self._own = {name.decode() if isinstance(name, bytes) else str(name) for name in names}
            self._own_read_at = now
        return self._own

    def is_own(self, hostname: str) -> bool:
        return hostname in self.own_workers()

    def queue_of(self, hostname: str) -> str | None:
        """The queue of a job `hostname` received: its only queue; None when it consumes several
        (or does not answer)."""
        with self._lock:
            queues = self._queues.get(hostname)
        if queues is None:
            now = self.clock()
            if now - self._asked.get(hostname, -LOOKUP_COOLDOWN_S) >= LOOKUP_COOLDOWN_S:
                self._asked[hostname] = now
                self.refresh([hostname])
                with self._lock:
                    queues = self._queues.get(hostname)
        return queues[0] if queues and len(queues) == 1 else None


class EventListener:
    """Translates the project's task events into the recorder's stream (see the module docstring)."""

    def __init__(self, celery: Any, directory: WorkerDirectory, emit: Callable[[dict[str, Any]], None]) -> None:
        self.celery = celery
        self.directory = directory
        self.emit = emit
        #: job id -> its queue, once an event told it (a task-sent names it; the worker's
        #: only queue otherwise), so every later event of the job agrees.
        self._queues: OrderedDict[str, str] = OrderedDict()
        self._receiver: Any = None
        self._stopping = threading.Event()

    def on_event(self, event: Event) -> None:
        """One Celery event; never raises (a bad event is logged, the next one is read)."""
        try:
            kind, hostname = str(event.get("type") or ""), event.get("hostname")
            if not kind.startswith("task-"):
                return
            if kind != "task-sent" and isinstance(hostname, str) and self.directory.is_own(hostname):
                return  # Celeriac's own worker: its signal handlers record the job
            for translated in translate(event, self._queue_for(event)):
                self.emit(translated)
        except Exception:  # one bad event must not stop the listener
            logger.exception("Attach: Celery event %s of task %s not recorded", event.get("type"), event.get("uuid"))

    def _queue_for(self, event: Event) -> str | None:
        job_id, hostname = event.get("uuid"), event.get("hostname")
        if not isinstance(job_id, str):
            return None
        queue = self._queues.get(job_id)
        if event.get("type") == "task-sent":
            queue = event.get("queue") or event.get("routing_key") or queue
        elif queue is None and isinstance(hostname, str):
            queue = self.directory.queue_of(hostname)
        if queue:
            self._queues[job_id] = queue
            self._queues.move_to_end(job_id)
            while len(self._queues) > REMEMBERED_QUEUES:
                self._queues.popitem(last=False)
        return queue

    def run(self) -> None:
        """Listen until `stop`, connecting again after a broker error."""
        pause = 0.5
        while not self._stopping.is_set():
            try:
                with self.celery.connection_for_read() as connection:
                    self._receiver = self.celery.events.Receiver(
                        connection, handlers={"*": self.on_event}, routing_key="task.#"
                    )
                    if self._stopping.is_set():
                        return
                    logger.info("Attach: recording the project's workers from Celery's task events")
                    pause = 0.5
                    self._receiver.capture(limit=None, timeout=None, wakeup=False)
            except Exception as exc:  # broker gone: events sent meanwhile are missed (docs)
                if self._stopping.is_set():
                    return
                logger.warning("Attach: event listener lost the broker (%s); reconnecting in %.1fs", exc, pause)
                self._stopping.wait(pause)
                pause = min(MAX_RECONNECT_S, pause * 2)

    def stop(self) -> None:
        self._stopping.set()
        if self._receiver is not None:
            self._receiver.should_stop = True


class EventsSwitch:
    """Keeps task events on in the project's workers and their queues known (module docstring)."""

    def __init__(self, celery: Any, directory: WorkerDirectory, settings: Settings) -> None:
        self.celery = celery
        self.directory = directory
        self.enable = settings.attach.enable_events
        self.interval_s = settings.attach.enable_events_interval_s
        self._stopping = threading.Event()

    def run_once(self) -> bool:
        """Turn task events on in every worker; True when the broadcast was sent.

        A broadcast nobody answers: asking every worker something (its queues) would make
        each one reply through the broker's shared reply table, where a worker whose kombu
        separator differs from ours (Celeriac's own outside attach mode uses ':') fails the
        reply and stops consuming. Celeriac's own workers may send events too; the listener
        drops them. Queues are asked of one project worker at a time (`queue_of`).
        """
        if not self.enable:
            return False
        self.celery.control.enable_events()
        return True

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception as exc:  # broker gone: the next round tries again
                logger.warning("Attach: could not reach the workers (%s)", exc)
            self._stopping.wait(self.interval_s)

    def stop(self) -> None:
        self._stopping.set()


class AttachedRecording:
    """The listener and the switch, in threads of the recorder process."""

    def __init__(self, settings: Settings, client: redis.Redis, celery: Any) -> None:
        self.buffer = EventBuffer(
            lambda: client, max_events=settings.event_buffer_size, flush_ms=settings.event_flush_ms
        )
        self.directory = WorkerDirectory(celery, client)
        self.listener = EventListener(celery, self.directory, self.buffer.emit)
        self.switch = EventsSwitch(celery, self.directory, settings)
        self._threads = [
            threading.Thread(target=self.listener.run, name="celeriac-attach-listener", daemon=True),
            threading.Thread(target=self.switch.run, name="celeriac-attach-switch", daemon=True),
        ]

    def start(self) -> AttachedRecording:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self.listener.stop()
        self.switch.stop()
        for thread in self._threads:
            thread.join(timeout_s)
        self.buffer.flush()
