"""The backends Celeriac's logic talks to, as Protocols: one seam, documented once.

Production implements them with Celery, Redis and RedBeat (app.backends, built once per
process); fast unit tests use the in-memory twins of app.backends.twins, as dramatiq's
StubBroker stands in for its broker and huey's MemoryStorage for its storage. Logic takes
a backend as an argument; the code that wires a call (views, CLI, beat's fire task, the
code API) gets it from `app.backends.current.backends()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.kernel.dispatching import ResolvedJob, TaskInfo

#: Score of a schedule entry that is never due (paused, or no next tick). RedBeat loads
#: only scores from 0 up to now, so any negative score keeps an entry asleep.
PAUSED_SCORE = -1
#: Seconds after which a schedule's tick whose fire failed (SQL down) is tried again.
RETRY_S = 30


class Registry(Protocol):
    """Looks up registered tasks by name (the Celery app in production)."""

    def get(self, job_class: str) -> TaskInfo | None: ...


class Publisher(Protocol):
    """Sends a job to the broker (Celery in production, a fake in users' tests)."""

    def publish(self, job: ResolvedJob) -> None: ...


class Canceller(Protocol):
    """Stops a job: a persistent mark checked before it runs, and a revoke broadcast."""

    def mark_cancelled(self, job_id: str) -> None: ...

    def clear_mark(self, job_id: str) -> None: ...

    def revoke(self, job_id: str, terminate: bool) -> None: ...

    def announce(self, job_id: str, reason: str) -> None:
        """Tell the recorder, so batches, chains and dependants hear of the cancel."""


class WorkerControl(Protocol):
    """Commands broadcast to workers (Celery remote control in production).

    Only `command` waits for answers; the others are fire-and-forget, because the registry
    in Redis (pauses, cancel marks) is what workers that miss a broadcast read later.
    """

    def cancel_consumer(self, queue: str) -> None:
        """Every worker stops fetching from `queue`."""

    def add_consumer(self, queue: str, hostnames: list[str]) -> None:
        """The workers `hostnames` start fetching from `queue` again."""

    def shutdown(self, hostname: str) -> None:
        """Warm shutdown of one worker (it sends no reply, by design)."""

    def revoke(self, job_ids: list[str], terminate: bool) -> None:
        """One broadcast for many jobs; `terminate` stops the ones already running."""

    def command(self, hostname: str, name: str, arguments: dict[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        """Send `name` to `hostname` alone; its replies (`[{hostname: answer}]`), empty if silent."""


@dataclass(frozen=True)
class ScheduleEntry:
    """What Celeriac reads back from a schedule's entry in the beat scheduler."""

    schedule_id: str
    tick: datetime | None
    enabled: bool
    #: Epoch seconds at which the entry is due; PAUSED_SCORE when it never is.
    score: float | None


class ScheduleStore(Protocol):
    """The beat scheduler's entries, one per schedule (RedBeat in production)."""

    def write(self, schedule_id: str, tick: datetime | None, enabled: bool, due: datetime | None = None) -> None:
        """Point the entry at `tick` (None or paused: never due), due at `due` (default: the tick).

        Raises:
            BackendUnavailable: the store cannot be reached.
        """

    def retry_later(self, schedule_id: str, tick: datetime | None) -> None:
        """After a failed fire: the same tick again, due RETRY_S from now."""

    def delete(self, schedule_id: str) -> None:
        """Raises: BackendUnavailable: the store cannot be reached."""

    def read(self, schedule_id: str) -> ScheduleEntry | None: ...

    def ids(self) -> set[str]:
        """Ids of every schedule with an entry."""


class Clock(Protocol):
    """The time, read through one seam so tests can hold it still."""

    def now(self) -> datetime:
        """An aware datetime in UTC."""
