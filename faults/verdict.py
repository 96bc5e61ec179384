"""Judge each accepted job: does its SQL row say what the ledger says really happened?

Pure functions over plain data, so the table's arithmetic is unit-tested
(tests/unit/test_faults_harness.py). Definitions (docs/reliability.md):

- ran: the ledger shows at least one start of the job.
- right: the row is terminal and true: `completed` iff a run finished; `failed` for a job
  whose runs failed or were killed; `failed`/`cancelled` for a job that never ran only when
  its reason says it was not queued. right + wrong = accepted.
- wrong: anything else, including a row still live (or missing) at the deadline.
- lost: never ran, and not recorded as not queued (a lost job is always also wrong).
- unfinished: ran, but every run was killed (no run finished or failed on its own).
- duplicates: started more than once (at-least-once re-runs, shown, not hidden);
  rerun after success: started again after a run had finished (never acceptable).
- ghosts: runs of no accepted job; of which `refused ghosts` ran although their dispatch
  answered an error (or never answered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from faults.ledger import Ledger, Runs

TERMINAL = frozenset({"completed", "failed", "cancelled"})
#: A row's reason saying the job never reached a queue ("could not be queued: ...").
NOT_QUEUED = re.compile(r"\bnot (?:be )?queued\b", re.IGNORECASE)
#: Job ids kept per wrong reason, to look at by hand.
EXAMPLES = 5


@dataclass(frozen=True)
class Accepted:
    """A dispatch that returned an id; `token` ties it to ledger lines (None: schedule fire)."""

    job_id: str
    token: str | None = None
    #: When its dispatch began (monotonic); None: unknown (a schedule fire).
    at: float | None = None


@dataclass(frozen=True)
class RowState:
    status: str
    error_message: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class Verdict:
    accepted: int = 0
    ran: int = 0
    right: int = 0
    wrong: int = 0
    lost: int = 0
    unfinished: int = 0
    duplicates: int = 0
    rerun_after_success: int = 0
    ghosts: int = 0
    refused_ghosts: int = 0
    live: int = 0
    #: Runs of accepted jobs that began and never ended (their process was killed under them).
    killed_runs: int = 0
    #: Wrong reason -> count, and a few job ids of each.
    wrong_reasons: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: The row's own reason (error message) of the first example of each wrong reason.
    example_errors: dict[str, str] = field(default_factory=dict)

    @property
    def all_terminal(self) -> bool:
        return self.live == 0

    @property
    def all_right(self) -> bool:
        return self.accepted > 0 and self.right == self.accepted

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "ran": self.ran,
            "right": self.right,
            "wrong": self.wrong,
            "lost": self.lost,
            "unfinished": self.unfinished,
            "duplicates": self.duplicates,
            "rerun_after_success": self.rerun_after_success,
            "ghosts": self.ghosts,
            "refused_ghosts": self.refused_ghosts,
            "live": self.live,
            "killed_runs": self.killed_runs,
            "wrong_reasons": dict(self.wrong_reasons),
            "examples": {k: list(v) for k, v in self.examples.items()},
            "example_errors": dict(self.example_errors),
        }


def judge_row(runs: Runs, row: RowState | None) -> str | None:
    """None when the row is right; otherwise why it is wrong (a short, stable reason)."""
    if row is None:
        return "no row"
    if not row.terminal:
        return f"still {row.status}"
    if row.status == "completed":
        return None if runs.succeeded else ("completed, never ran" if not runs.ran else "completed, no run finished")
    if runs.succeeded:
        return f"{row.status}, but it succeeded"
    if runs.ran:
        return None  # its runs failed or were killed: a failed/cancelled row is true
    if NOT_QUEUED.search(row.error_message or ""):
        return None
    return f"{row.status}, never ran, reason not 'not queued'"


def runs_of(job: Accepted, ledger: Ledger) -> Runs:
    """The runs of an accepted job: by its token when it has one, else by its id."""
    if job.token is not None:
        return ledger.by_token.get(job.token) or ledger.by_id.get(job.job_id) or Runs()
    return ledger.by_id.get(job.job_id) or Runs()


def judge(
    accepted: list[Accepted],
    rows: dict[str, RowState],
    ledger: Ledger,
    refused_tokens: set[str],
) -> Verdict:
    """Count every column of the table for one scenario."""
    verdict = Verdict(accepted=len(accepted))
    known_ids: set[str] = set()
    known_tokens: set[str] = set()
    for job in accepted:
        known_ids.add(job.job_id)
        if job.token is not None:
            known_tokens.add(job.token)
        runs = runs_of(job, ledger)
        row = rows.get(job.job_id)
        _count_job(verdict, job, runs, row)
    _count_ghosts(verdict, ledger, known_ids, known_tokens, refused_tokens)
    return verdict


def _count_job(verdict: Verdict, job: Accepted, runs: Runs, row: RowState | None) -> None:
    if runs.ran:
        verdict.ran += 1
    verdict.killed_runs += runs.killed
    if runs.starts > 1:
        verdict.duplicates += 1
    if runs.starts_after_success:
        verdict.rerun_after_success += 1
    if runs.ran and not runs.succeeded and runs.fails == 0:
        verdict.unfinished += 1
    if row is None or not row.terminal:
        verdict.live += 1
    reason = judge_row(runs, row)
    if reason is None:
        verdict.right += 1
        return
    verdict.wrong += 1
    verdict.wrong_reasons[reason] = verdict.wrong_reasons.get(reason, 0) + 1
    examples = verdict.examples.setdefault(reason, [])
    if len(examples) < EXAMPLES:
        examples.append(job.job_id)
    if row is not None and row.error_message and reason not in verdict.example_errors:
        verdict.example_errors[reason] = row.error_message[:200]
    if not runs.ran:
        verdict.lost += 1


def _count_ghosts(
    verdict: Verdict, ledger: Ledger, known_ids: set[str], known_tokens: set[str], refused_tokens: set[str]
) -> None:
    """Runs attributable to no accepted job, counted once per job id."""
    ghost_ids: set[str] = set()
    for token, ids in ledger.ids_of_token.items():
        if token in known_tokens:
            continue
        unknown = ids - known_ids
        ghost_ids |= unknown
        if token in refused_tokens and unknown:
            verdict.refused_ghosts += len(unknown)
    ghost_ids |= ledger.tokenless_ids - known_ids
    verdict.ghosts = len(ghost_ids)


def affected_by(accepted: list[Accepted], fault_end: float | None) -> list[Accepted]:
    """The jobs a fault could touch: dispatched before it ended (jobs of unknown time too)."""
    if fault_end is None:
        return accepted
    return [job for job in accepted if job.at is None or job.at <= fault_end]


def recovery_seconds(fault_end: float | None, all_right_at: float | None) -> float | None:
    """Seconds from the end of the fault to the first moment every row was terminal and right."""
    if fault_end is None or all_right_at is None:
        return None
    return max(0.0, all_right_at - fault_end)
