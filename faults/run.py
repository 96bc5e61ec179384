"""One scenario run on a fresh stack: its load, its timeline, the wait for the rows to settle,
and the outcome (one row of the table and what explains it).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faults.features import Kill, judge_delays, judge_limits
from faults.ledger import LedgerReader
from faults.load import CONCURRENCY_KEY, CONCURRENCY_LIMIT, Load, LoadResult, plan
from faults.observe import Observer, Watch, broker_backlog, concurrency_state, settle
from faults.stack import Stack, wait_seconds
from faults.verdict import Accepted, Verdict, recovery_seconds

logger = logging.getLogger("faults")

#: Dispatches per second the load aims at (a worker with -c 2 runs fewer: a backlog builds).
DISPATCH_RATE = 60.0
#: What the worker logs when it parks a job over its concurrency limit (celeriac.concurrency_worker).
PARKED_LINE = "parked: concurrency key"
#: Seconds after the load window when dispatches still unanswered count as refused.
UNANSWERED_AFTER_S = 60.0


@dataclass
class Options:
    jobs: int = 3000
    seed: int = 11
    deadline_s: float = 300.0


@dataclass
class Outcome:
    """One row of the table and what explains it."""

    scenario: str
    db: str
    verdict: Verdict | None = None
    recover_s: float | None = None
    timed_out: bool = False
    fault: str = ""
    notes: list[str] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    backlog_after: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "db": self.db,
            "verdict": self.verdict.as_dict() if self.verdict else None,
            "recover_s": self.recover_s, "timed_out": self.timed_out, "fault": self.fault, "notes": self.notes,
            "load": self.load, "events": self.events, "backlog_after": self.backlog_after, "extra": self.extra,
            "error": self.error, "seconds": round(self.seconds, 1),
        }  # fmt: skip


class Run:
    """One scenario on a fresh stack: load, timeline, settle, verdict."""

    def __init__(self, stack: Stack, options: Options, name: str) -> None:
        self.stack = stack
        self.options = options
        self.name = name
        self.outcome = Outcome(name, stack.db)
        self.rng = random.Random(f"{options.seed}-{name}")
        self.load: Load | None = None
        self.fault_end: float | None = None
        self.began = time.monotonic()
        self.observer: Observer | None = None
        #: SIGKILLs the scenario sent to job processes (where killed runs of limited jobs end).
        self.kills: list[Kill] = []
        #: Wall time the fault struck (scenarios that set it; else the first kill).
        self.struck_wall: float | None = None
        self._gave_up = False

    def begin(self, redis_persist: bool = True) -> None:
        self.stack.fresh(self.stack.run_dir / self.name, redis_persist=redis_persist)
        self.observer = Observer(self.stack.database_url)
        self.began = time.monotonic()

    def start_load(self, min_window_s: float) -> float:
        """Dispatch the run's jobs over at least `min_window_s`; returns the window."""
        n = self.options.jobs
        window = max(min_window_s, n / DISPATCH_RATE)
        specs = plan(n, self.options.seed, self.name)
        self.load = Load(specs, window, self.stack.web_url, self.stack.operator_token)
        self.load.start()
        return window

    def at(self, seconds: float) -> float:
        """Wait for a point of the timeline (seconds since the load started)."""
        assert self.load is not None
        wait_seconds(seconds - self.load.elapsed())
        return time.monotonic()

    def t(self) -> float:
        return self.load.elapsed() if self.load is not None else time.monotonic() - self.began

    def killed(self, pid: int | None = None) -> None:
        """Record a SIGKILL about to be sent to pool child `pid` (None: the whole worker)."""
        self.kills.append(Kill(time.time(), pid))

    def note(self, text: str) -> None:
        self.outcome.notes.append(text)
        logger.info("[%s] %s", self.name, text)

    def finish(self, accepted: Callable[[], list[Accepted]] | None = None) -> Outcome:
        """Watch the rows from the end of the fault until they settle (deadline), judge them."""
        assert self.observer is not None
        load = self.load
        if load is not None:
            window_end = load.started_at + load.duration_s
            accepted = load.result.accepted
            watch = Watch(accepted, load.result.refused_tokens, lambda: self._load_over(window_end), self.fault_end)
        else:
            window_end = time.monotonic()
            assert accepted is not None
            watch = Watch(accepted, set, lambda: True, self.fault_end)
        deadline_at = max(window_end, self.fault_end or 0.0, time.monotonic()) + self.options.deadline_s
        if load is not None:
            backlog = broker_backlog(self.stack.redis.url)
            self.note(f"when the fault ended: {backlog['queued']} jobs queued, {backlog['unacked']} unacknowledged")
        reader = LedgerReader(self.stack.ledger_path)
        settled = settle(watch, reader, self.observer, deadline_at)
        if load is not None:
            load.stop()
            self.outcome.load = load.result.summary()
            self._judge_features(load.result, reader)
        verdict = settled.verdict
        self.outcome.verdict = verdict
        self.outcome.timed_out = settled.timed_out
        self.outcome.recover_s = recovery_seconds(self.fault_end, settled.all_right_at)
        self.outcome.backlog_after = broker_backlog(self.stack.redis.url)
        self.outcome.events = [
            f"{event.at - self.began:7.1f}s {event.name}: {event.what}" for event in self.stack.supervisor.events
        ]
        if settled.timed_out:
            self.note(f"deadline ({self.options.deadline_s:.0f} s) passed with {verdict.live} rows still live")
        self.outcome.seconds = time.monotonic() - self.began
        self.observer.dispose()
        return self.outcome

    def _judge_features(self, result: LoadResult, reader: LedgerReader) -> None:
        """Delayed and concurrency-limited jobs (faults.features), into `extra`."""
        from faults.stack import TENANT

        ledger = reader.refresh()
        struck = self.struck_wall or min((k.at for k in self.kills), default=None)
        fault = None
        if struck is not None and self.fault_end is not None:
            fault = (struck, time.time() - (time.monotonic() - self.fault_end))
        self.outcome.extra["delays"] = judge_delays(result.delayed(), ledger, fault).as_dict()
        left = concurrency_state(self.stack.redis.url, f"{TENANT}:{CONCURRENCY_KEY}")
        limited = [(job.job_id, job.token or "") for job in result.limited()]
        limits = judge_limits(limited, CONCURRENCY_LIMIT, ledger, self.kills, left)
        limits.parks = _count_lines(self.stack.scenario_dir / "worker.log", PARKED_LINE)
        self.outcome.extra["limits"] = limits.as_dict()

    def _load_over(self, window_end: float) -> bool:
        """Every dispatch answered, or the answers are overdue (then they count as refused)."""
        assert self.load is not None
        if self.load.finished():
            return True
        if time.monotonic() > window_end + UNANSWERED_AFTER_S:
            if not self._gave_up:
                self._gave_up = True
                self.note(f"some dispatches had not answered {UNANSWERED_AFTER_S:.0f} s after the load window")
            return True
        return False


def _count_lines(path: Path, text: str) -> int:
    try:
        with path.open(errors="replace") as handle:
            return sum(text in line for line in handle)
    except OSError:
        return 0
