"""The worker side of concurrency limits (celeriac.concurrency): take a slot, park, release.

- The prerun gate takes a slot for a job whose `celeriac` header names a concurrency key;
  over the limit it parks the job's message in Redis and the run is skipped (the message
  is acknowledged, no attempt is counted, the row stays pending with a timeline note).
- The slot is given back, and the oldest waiter published again, when the attempt ends:
  `task_postrun` in the process that ran it (success, failure, retry, soft time limit,
  skipped), `task_failure` / `task_revoked` in the worker's main process (hard time
  limit, terminate).
- A thread in the main process pushes on the leases of the holders it runs (their
  heartbeat); a worker that dies stops doing so, and its slots expire after the lease.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from celery import signals as celery_signals
from celery.worker import state

from celeriac import events as ev
from celeriac import header
from celeriac.concurrency import Slots, parked_message, publish_parked
from celeriac.task import is_skipped

logger = logging.getLogger(__name__)

#: Lease of a holder when its header names none, in seconds.
DEFAULT_LEASE_S = 60.0
#: Shortest pause of the lease thread, in seconds (it refreshes at a third of the lease).
MIN_REFRESH_S = 0.5


@dataclass(frozen=True)
class Claim:
    """A message's concurrency claim: its scoped key, the limit it asks for, its lease."""

    key: str
    limit: int
    lease_s: float


def claim_of(source: Any) -> Claim | None:
    """The claim a request, message or headers mapping carries (None: not limited)."""
    spec = header.read_or_empty(source).get("concurrency")
    if not isinstance(spec, dict) or not isinstance(spec.get("key"), str):
        return None
    limit = spec.get("limit")
    lease = spec.get("lease")
    return Claim(
        spec["key"],
        int(limit) if isinstance(limit, int) and limit >= 1 else 1,
        float(lease) if isinstance(lease, (int, float)) and lease > 0 else DEFAULT_LEASE_S,
    )


_redis: Callable[[], redis.Redis] | None = None
_slots: tuple[int, Slots] | None = None
_emit: Callable[[dict[str, Any]], None] | None = None
#: Holders this process runs: job id -> claim (prefork: one at a time per child).
_holding: dict[str, Claim] = {}
#: Jobs this process parked in their current delivery (their postrun has nothing to give back).
_parked: set[str] = set()


def slots() -> Slots:
    global _slots
    if _redis is None:
        raise RuntimeError("celeriac.concurrency_worker.configure() was not called in this process")
    client = _redis()
    if _slots is None or _slots[0] != id(client):
        _slots = (id(client), Slots(client))
    return _slots[1]


def _publish(app: Celery, messages: list[str], why: str) -> None:
    if not messages:
        return
    try:
        publish_parked(app, messages)
    except Exception:  # each waiter holds its slot until the lease ends; the reconciler republishes
        logger.exception("Concurrency: %d waiter(s) promoted (%s) but not published", len(messages), why)


def gate(task_id: str, task: Any) -> bool:
    """Take a slot for the job, or park it; True when it was parked (its run is skipped)."""
    request = task.request
    if getattr(request, "is_eager", False):
        return False  # run in the dispatching process: there is no message to park
    claim = claim_of(request)
    if claim is None:
        return False
    store = slots()
    status, promoted = store.acquire(claim.key, task_id, limit=claim.limit, lease_s=claim.lease_s, message=None)
    if status == "need":
        status, more = store.acquire(
            claim.key, task_id, limit=claim.limit, lease_s=claim.lease_s, message=parked_message(task, request)
        )
        promoted += more
    _publish(task.app, promoted, "acquire")
    if status == "run":
        _holding[task_id] = claim
        return False
    _parked.add(task_id)
    if _emit is not None:
        _emit(ev.note(task_id, f"waiting for a concurrency slot (key {claim.key.partition(':')[2]})"))
    logger.info("Job %s parked: concurrency key %s is at its limit", task_id, claim.key)
    return True


def release(app: Celery, task_id: str, claim: Claim) -> None:
    try:
        promoted = slots().release(claim.key, task_id, lease_s=claim.lease_s)
    except redis.RedisError:
        logger.warning("Job %s: concurrency slot of %s not released; it expires with its lease", task_id, claim.key)
        return
    _publish(app, promoted, "release")


def on_postrun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """The attempt ended in this process (any outcome): give its slot back.

    A job skipped before the gate (cancelled while it waited) may hold a slot it was
    promoted to: that one is given back too.
    """
    if task_id is None or task is None:
        return
    claim = _holding.pop(task_id, None)
    if task_id in _parked:
        _parked.discard(task_id)
    elif claim is None and is_skipped(task.request):
        claim = claim_of(task.request)
    if claim is not None:
        release(task.app, task_id, claim)


def _claim_in_main(task_id: str) -> Claim | None:
    for request in list(state.active_requests):
        if request.id == task_id:
            return claim_of(request.request_dict)
    return _leases.get(task_id) if _leases is not None else None


def on_main_failure(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    """A hard time limit (or a lost process) ended the attempt: the child cannot release."""
    if task_id is None or task_id in _holding or _leases is None or _leases.pid != os.getpid():
        return  # in the child, postrun releases; outside a worker's main process, nothing to do
    claim = _claim_in_main(task_id)
    if claim is not None and sender is not None:
        release(sender.app, task_id, claim)


def on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    if request is None or getattr(request, "id", None) in _holding:
        return
    claim = claim_of(request)
    if claim is not None and sender is not None:
        release(sender.app, request.id, claim)


class LeaseThread:
    """Pushes on the leases of the holders this worker runs, from its main process."""

    def __init__(self) -> None:
        self.claims: dict[str, Claim] = {}
        self.pid = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celeriac-concurrency-leases", daemon=True)

    def get(self, job_id: str) -> Claim | None:
        return self.claims.get(job_id)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            pause = self.beat()
            if self._stop.wait(pause):
                return

    def beat(self) -> float:
        """Refresh every running holder; returns the seconds until the next beat."""
        claims: dict[str, Claim] = {}
        for request in list(state.active_requests):
            claim = claim_of(request.request_dict)
            if claim is not None:
                claims[request.id] = claim
        self.claims = claims
        if not claims:
            return DEFAULT_LEASE_S / 3
        try:
            by_lease: dict[float, list[tuple[str, str]]] = {}
            for job_id, claim in claims.items():
                by_lease.setdefault(claim.lease_s, []).append((job_id, claim.key))
            for lease_s, held in by_lease.items():
                slots().refresh(held, lease_s=lease_s)
        except Exception:  # a supervised loop: log and beat again
            logger.exception("Concurrency: leases not refreshed")
        return max(MIN_REFRESH_S, min(claim.lease_s for claim in claims.values()) / 3)


_leases: LeaseThread | None = None


def on_worker_ready(**_: Any) -> None:
    global _leases
    try:
        _leases = LeaseThread()
        _leases.start()
    except Exception:
        logger.exception("Concurrency lease thread did not start")


def on_worker_shutdown(**_: Any) -> None:
    global _leases
    if _leases is not None:
        _leases.stop()
        _leases = None


def configure(client: Callable[[], redis.Redis], emit: Callable[[dict[str, Any]], None]) -> None:
    """The Redis client and the event sink (celeriac.signals.configure passes its own)."""
    global _redis, _emit, _slots
    _redis, _emit, _slots = client, emit, None


_connected = False


def connect() -> None:
    """Connect the release handlers and the lease thread once (celeriac.signals.connect)."""
    global _connected
    if _connected:
        return
    celery_signals.task_postrun.connect(on_postrun, weak=False)
    celery_signals.task_failure.connect(on_main_failure, weak=False)
    celery_signals.task_revoked.connect(on_revoked, weak=False)
    celery_signals.worker_ready.connect(on_worker_ready, weak=False)
    celery_signals.worker_shutdown.connect(on_worker_shutdown, weak=False)
    _connected = True
