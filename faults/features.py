"""Judge the two reliability-sensitive features of issue 13 against the ledger.

Pure functions over plain data (unit-tested in tests/unit/test_faults_harness.py):

- long delays (Celeriac's scheduled set): each delayed job must start exactly once, never
  before it is due (its dispatch's wall time plus its delay; EARLY_TOLERANCE_S allowed for
  clock reading), and not be lost; the lateness of its first start is reported;
- concurrency limits: the probes dispatched under one key must never run more than its
  limit at once. A run is the time between its `start` and its `done`/`fail` line (written
  inside the slot, which is taken before `start` and given back after the end line); a run
  that never wrote its end was killed: it ends at the harness's kill of its process (or of
  the whole worker), else at the next line its process wrote; failing both, it is left out
  and counted (`open_runs`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from faults.ledger import DONE, FAIL, START, Entry, Ledger, Runs

#: A start this much before the due time is still on time (wall clocks read in two processes).
EARLY_TOLERANCE_S = 1.0
#: Job ids kept per kind of problem, to look at by hand.
EXAMPLES = 5


@dataclass(frozen=True)
class Delayed:
    """An accepted delayed dispatch; `due` is the earliest wall time it may start."""

    job_id: str
    token: str
    due: float
    delay_s: float = 0.0


@dataclass(frozen=True)
class Kill:
    """A SIGKILL the harness sent: to one pool child (`pid`), or to the whole worker (None)."""

    at: float
    pid: int | None = None


@dataclass
class DelayVerdict:
    delayed: int = 0
    #: Started exactly once and not early: what every delayed job should do.
    once: int = 0
    #: Started more than once (killed mid-run and run again: at-least-once, shown).
    several: int = 0
    rerun_after_success: int = 0
    never: int = 0
    early: int = 0
    #: Seconds from the due time to the first start: the earliest (most negative) and the latest.
    earliest_s: float | None = None
    latest_s: float | None = None
    median_s: float | None = None
    #: Dispatched before the fault ended and due after it (held in the set across the fault),
    #: and the latest first start of those after their due time.
    across_fault: int = 0
    across_latest_s: float | None = None
    examples: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LimitVerdict:
    limited: int = 0
    limit: int = 0
    ran: int = 0
    never: int = 0
    #: Most runs of the key at once, and the starts that took it over the limit.
    peak: int = 0
    over_limit: int = 0
    over_limit_at: list[float] = field(default_factory=list)
    killed_runs: int = 0
    open_runs: int = 0
    #: Times a limited job was parked (over the limit), from the worker's log.
    parks: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: Redis at the end (faults.observe.concurrency_state): holders with a live lease, waiters.
    left: dict[str, int | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _runs(ledger: Ledger, token: str, job_id: str) -> Runs:
    return ledger.by_token.get(token) or ledger.by_id.get(job_id) or Runs()


def _example(examples: dict[str, list[str]], kind: str, job_id: str) -> None:
    found = examples.setdefault(kind, [])
    if len(found) < EXAMPLES:
        found.append(job_id)


def judge_delays(delayed: Iterable[Delayed], ledger: Ledger, fault: tuple[float, float] | None = None) -> DelayVerdict:
    """`fault`: wall times (struck, ended); jobs dispatched before its end and due after its
    start waited in the scheduled set across it."""
    verdict = DelayVerdict()
    lateness: list[float] = []
    across: list[float] = []
    for job in delayed:
        verdict.delayed += 1
        spans = fault is not None and job.due - job.delay_s <= fault[1] and job.due >= fault[0]
        verdict.across_fault += spans
        runs = _runs(ledger, job.token, job.job_id)
        first = runs.first_start
        if first is None:
            verdict.never += 1
            _example(verdict.examples, "never ran", job.job_id)
            continue
        late = first - job.due
        lateness.append(late)
        if spans:
            across.append(late)
        early = late < -EARLY_TOLERANCE_S
        if early:
            verdict.early += 1
            _example(verdict.examples, "started early", job.job_id)
        if runs.starts > 1:
            verdict.several += 1
            _example(verdict.examples, "started more than once", job.job_id)
        elif not early:
            verdict.once += 1
        if runs.starts_after_success:
            verdict.rerun_after_success += 1
    if lateness:
        verdict.earliest_s = round(min(lateness), 2)
        verdict.latest_s = round(max(lateness), 2)
        verdict.median_s = round(statistics.median(lateness), 2)
    if across:
        verdict.across_latest_s = round(max(across), 2)
    return verdict


def _pid_lines(ledger: Ledger) -> dict[int, list[float]]:
    """Wall times of every line each process wrote, sorted."""
    lines: dict[int, list[float]] = {}
    for runs in ledger.by_id.values():
        for entry in runs.entries:
            lines.setdefault(entry.pid, []).append(entry.at)
    for times in lines.values():
        times.sort()
    return lines


def _end_of_killed(start: Entry, kills: list[Kill], pid_lines: dict[int, list[float]]) -> float | None:
    for kill in sorted(kills, key=lambda k: k.at):
        if kill.at >= start.at and kill.pid in (None, start.pid):
            return kill.at
    later = [at for at in pid_lines.get(start.pid, []) if at > start.at]
    return later[0] if later else None


def run_intervals(
    entries: list[Entry], kills: list[Kill], pid_lines: dict[int, list[float]]
) -> tuple[list[tuple[float, float]], int, int]:
    """(start, end) of each run in `entries` (one job's lines, file order); (intervals, killed, open)."""
    intervals: list[tuple[float, float]] = []
    killed = unknown = 0
    for i, entry in enumerate(entries):
        if entry.phase != START:
            continue
        end = next((e.at for e in entries[i + 1 :] if e.pid == entry.pid and e.phase in (DONE, FAIL)), None)
        if end is None:
            killed += 1
            end = _end_of_killed(entry, kills, pid_lines)
        if end is None:
            unknown += 1
            continue
        intervals.append((entry.at, end))
    return intervals, killed, unknown


def peak_overlap(intervals: list[tuple[float, float]], limit: int) -> tuple[int, list[float]]:
    """The most intervals open at once, and the start times that took the count over `limit`
    (an interval ending at the moment another starts does not overlap it)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    running = peak = 0
    over: list[float] = []
    for at, step in events:
        running += step
        peak = max(peak, running)
        if step == 1 and running > limit:
            over.append(at)
    return peak, over


def judge_limits(
    limited: Iterable[tuple[str, str]], limit: int, ledger: Ledger, kills: list[Kill], left: dict[str, int | None]
) -> LimitVerdict:
    """`limited`: (job id, token) of every accepted dispatch under the key."""
    verdict = LimitVerdict(limit=limit, left=dict(left))
    pid_lines = _pid_lines(ledger)
    intervals: list[tuple[float, float]] = []
    for job_id, token in limited:
        verdict.limited += 1
        runs = _runs(ledger, token, job_id)
        if not runs.ran:
            verdict.never += 1
            _example(verdict.examples, "never ran", job_id)
            continue
        verdict.ran += 1
        found, killed, unknown = run_intervals(runs.entries, kills, pid_lines)
        intervals += found
        verdict.killed_runs += killed
        verdict.open_runs += unknown
    verdict.peak, over = peak_overlap(intervals, limit)
    verdict.over_limit = len(over)
    verdict.over_limit_at = [round(at, 3) for at in over[:EXAMPLES]]
    return verdict


def delayed_cell(delays: dict[str, Any] | None) -> str:
    """The table's `delayed` cell: delayed jobs that started exactly once and not early / all."""
    if not delays or not delays.get("delayed"):
        return ""
    return f"{delays['once']}/{delays['delayed']}"


def limit_cell(limits: dict[str, Any] | None) -> str:
    """The table's `limit peak` cell: most runs of the key at once / its limit."""
    if not limits or not limits.get("limited"):
        return ""
    return f"{limits['peak']}/{limits['limit']}"


def delay_note(d: dict[str, Any]) -> str:
    text = (
        f"delayed: {d['delayed']} ({d['once']} started once and on time, {d['several']} more than once, "
        f"{d['early']} early, {d['never']} never; rerun after success {d['rerun_after_success']})"
    )
    if d.get("latest_s") is not None:
        text += f"; first start after due: median {d['median_s']} s, latest {d['latest_s']} s"
        text += f", earliest {d['earliest_s']} s"
    if d.get("across_fault"):
        text += f"; {d['across_fault']} waited across the fault (latest {d['across_latest_s']} s after due)"
    return text


def limit_note(v: dict[str, Any]) -> str:
    left = v.get("left") or {}
    text = (
        f"limited (limit {v['limit']}): {v['limited']} ({v['ran']} ran, {v['never']} never); "
        f"most running at once {v['peak']}, starts over the limit {v['over_limit']}; "
        f"parked {v['parks']} time(s); runs killed {v['killed_runs']} (end unknown: {v['open_runs']}); "
        f"at the end {left.get('holders')} slot(s) held, {left.get('waiting')} waiting"
    )
    if v.get("over_limit_at"):
        text += f"; over the limit at wall times {v['over_limit_at']}"
    return text


def feature_notes(extra: dict[str, Any]) -> list[str]:
    """The lines under the table for a scenario's delayed and limited jobs."""
    lines = []
    if (extra.get("delays") or {}).get("delayed"):
        lines.append(delay_note(extra["delays"]))
    if (extra.get("limits") or {}).get("limited"):
        lines.append(limit_note(extra["limits"]))
    return lines
