"""In-memory twins of every backend of app.kernel.ports, for fast unit tests.

Each keeps what it was asked to do in plain lists and dicts a test can read, and behaves as
its production counterpart does where Celeriac's logic depends on it (the schedule store
scores entries as RedBeat does). They prove our logic, never Celery's, Redis's or RedBeat's:
tests that claim those keep the real backends. The `twins` fixture of tests/conftest.py
installs a set (app.backends.current.install) and puts the previous backends back after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.backends.current import Backends
from app.kernel.dispatching import ResolvedJob, TaskInfo
from app.kernel.ports import PAUSED_SCORE, RETRY_S, Registry, ScheduleEntry

#: When a ManualClock starts unless told otherwise: a Monday noon, far from any DST change.
DEFAULT_NOW = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)


class MemoryPublisher:
    """Keeps every published job, in order, in `published`."""

    def __init__(self) -> None:
        self.published: list[ResolvedJob] = []

    def publish(self, job: ResolvedJob) -> None:
        self.published.append(job)


class MemoryRegistry:
    """The tasks it was given (by name); nothing else exists."""

    def __init__(self, *tasks: TaskInfo) -> None:
        self.tasks = {task.name: task for task in tasks}

    def get(self, job_class: str) -> TaskInfo | None:
        return self.tasks.get(job_class)

    def names(self) -> list[str]:
        return sorted(self.tasks)


class MemoryCanceller:
    """Cancel marks in a set; revokes and announcements in lists."""

    def __init__(self) -> None:
        self.marked: set[str] = set()
        self.revoked: list[tuple[str, bool]] = []
        self.announced: list[tuple[str, str]] = []

    def mark_cancelled(self, job_id: str) -> None:
        self.marked.add(job_id)

    def clear_mark(self, job_id: str) -> None:
        self.marked.discard(job_id)

    def revoke(self, job_id: str, terminate: bool) -> None:
        self.revoked.append((job_id, terminate))

    def announce(self, job_id: str, reason: str) -> None:
        self.announced.append((job_id, reason))


@dataclass
class MemoryWorkerControl:
    """Records every broadcast in `sent`; a worker answers `command` only if `answers` names it.

    `answers[hostname]` is its reply (e.g. `{"ok": "pool grown"}` or `{"error": "..."}`);
    a worker not in it is silent, like one that is busy or gone.
    """

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def cancel_consumer(self, queue: str) -> None:
        self.sent.append(("cancel_consumer", {"queue": queue}))

    def add_consumer(self, queue: str, hostnames: list[str]) -> None:
        self.sent.append(("add_consumer", {"queue": queue, "destination": list(hostnames)}))

    def shutdown(self, hostname: str) -> None:
        self.sent.append(("shutdown", {"destination": [hostname]}))

    def revoke(self, job_ids: list[str], terminate: bool) -> None:
        self.sent.append(("revoke", {"job_ids": list(job_ids), "terminate": terminate}))

    def command(self, hostname: str, name: str, arguments: dict[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        self.sent.append((name, {**arguments, "destination": [hostname]}))
        answer = self.answers.get(hostname)
        return [{hostname: answer}] if answer is not None else []


class ManualClock:
    """Stands still until a test moves it (`advance`, or `at = ...`)."""

    def __init__(self, at: datetime = DEFAULT_NOW) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class MemoryScheduleStore:
    """Schedule entries in a dict, scored as the RedBeat store scores them."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.clock = clock or ManualClock()
        self.entries: dict[str, ScheduleEntry] = {}

    def write(self, schedule_id: str, tick: datetime | None, enabled: bool, due: datetime | None = None) -> None:
        due = due or tick
        # RedBeat keeps whole seconds: the tick goes into the entry as an epoch integer.
        whole = datetime.fromtimestamp(int(tick.timestamp()), UTC) if tick is not None else None
        score = float(int(due.timestamp())) if enabled and due is not None else float(PAUSED_SCORE)
        self.entries[schedule_id] = ScheduleEntry(schedule_id, whole, enabled and tick is not None, score)

    def retry_later(self, schedule_id: str, tick: datetime | None) -> None:
        self.write(schedule_id, tick, enabled=True, due=self.clock.now() + timedelta(seconds=RETRY_S))

    def delete(self, schedule_id: str) -> None:
        self.entries.pop(schedule_id, None)

    def read(self, schedule_id: str) -> ScheduleEntry | None:
        return self.entries.get(schedule_id)

    def ids(self) -> set[str]:
        return set(self.entries)


def twins(registry: Registry | None = None, clock: ManualClock | None = None) -> Backends:
    """A full set of twins sharing one clock (`registry`: MemoryRegistry() unless given)."""
    clock = clock or ManualClock()
    return Backends(
        publisher=MemoryPublisher(),
        registry=registry if registry is not None else MemoryRegistry(),
        canceller=MemoryCanceller(),
        workers=MemoryWorkerControl(),
        schedules=MemoryScheduleStore(clock),
        clock=clock,
    )
