"""Queue health (M4): healthy / warning / critical, with the issues and what to do.

Built from what stats already read cheaply: per-queue stats (aggregates and indexed live
counts), the recent minutes of the aggregates (wait histogram, retries), the worker
registry, the recorder's heartbeat and backlog, and stuck jobs. Thresholds are settings
(`app.config.HealthThresholds`); defaults are SPEC.md's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.config import HealthThresholds
from app.kernel.aggregates import WindowStats
from app.monitoring.advice import (
    Advice,
    Ref,
    advice,
    as_advice,
    failed_page,
    performance_page,
    running_jobs,
    workers_page,
)
from app.monitoring.workers import ONLINE, WorkerInfo

HEALTHY, WARNING, CRITICAL = "healthy", "warning", "critical"
_RANK = {HEALTHY: 0, WARNING: 1, CRITICAL: 2}


@dataclass
class Report:
    status: str = HEALTHY
    issues: list[dict[str, Any]] = field(default_factory=list)
    #: Each with its references (API paths in the API's text, links in the console).
    advice: list[Advice] = field(default_factory=list)

    @property
    def recommendations(self) -> list[str]:
        return [a.text for a in self.advice]

    def add(self, level: str, subject: str, issue: str, advice: str | Advice) -> None:
        if _RANK[level] > _RANK[self.status]:
            self.status = level
        self.issues.append({"level": level, "subject": subject, "issue": issue})
        given = as_advice(advice)
        if given.text not in self.recommendations:
            self.advice.append(given)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "issues": self.issues, "recommendations": self.recommendations}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.1f} s"


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value < 1000 else _minutes(value / 1000)


def assess(
    queues: list[dict[str, Any]],
    workers: list[WorkerInfo],
    recorder: Mapping[Any, Any],
    recorder_alive: bool,
    stuck: int,
    limits: HealthThresholds,
    recent: Mapping[str, WindowStats] | None = None,
) -> Report:
    """Judge the figures; every issue comes with a concrete next step.

    `recent` holds each queue's aggregates over the last `limits.recent_window_s`.
    """
    report = Report()
    online = [w for w in workers if w.status == ONLINE]
    if not online:
        report.add(
            CRITICAL,
            "workers",
            "no worker is online (no heartbeat in the last CELERIAC_WORKER_OFFLINE_AFTER_S seconds)",
            "start workers: `make run`, or `supervisorctl start celeriac-worker:*` in production",
        )
    for stats in queues:
        _assess_queue(report, stats, online, limits, (recent or {}).get(stats["queue"]))
    if not recorder_alive:
        report.add(
            CRITICAL,
            "recorder",
            "the recorder is not running: execution history is not being written (events wait in Redis)",
            "start it: `python -m app.recorder` (Procfile `recorder`, supervisor program celeriac-recorder)",
        )
    backlog = int(float(recorder.get(b"backlog", b"0")))
    if backlog > limits.recorder_backlog_warning:
        report.add(
            WARNING,
            "recorder",
            f"{backlog:,} events wait for the recorder",
            "run a second recorder (they share the stream's consumer group) or give SQL more capacity",
        )
    if stuck:
        report.add(
            WARNING,
            "jobs",
            f"{stuck} job(s) stuck: running past their timeout, or on a worker that is gone",
            advice(
                "see ",
                running_jobs("GET /api/monitoring/stuck"),
                "; the recorder's reconciler puts a dead worker's jobs back in their "
                "queue within a minute or two (`flask celeriac reconcile` runs it now)",
            ),
        )
    return report


def _assess_queue(
    report: Report,
    stats: dict[str, Any],
    online: list[WorkerInfo],
    limits: HealthThresholds,
    recent: WindowStats | None,
) -> None:
    name = stats["queue"]
    consuming = [w for w in online if name in w.heartbeat.queues]
    pending = int(stats["pending"])
    oldest = stats.get("oldest_pending_age_s")
    workers_text = f"{len(consuming)} worker{'s' if len(consuming) != 1 else ''} consuming"
    if pending and online and not consuming:
        report.add(
            CRITICAL,
            f"queue {name}",
            f"{pending:,} pending and no online worker consumes it",
            advice(
                f"queue {name}: start a worker with `-Q {name}` or add it with ",
                workers_page("POST /api/workers/<host>/add-consumer"),
            ),
        )
        return
    if pending > limits.pending_warning:
        age = f", oldest {_minutes(float(oldest))}" if oldest is not None else ""
        report.add(
            WARNING,
            f"queue {name}",
            f"{pending:,} pending{age}, {workers_text}",
            f"queue {name}: {pending:,} pending{age}, {workers_text} - add workers or raise concurrency",
        )
    elif oldest is not None and float(oldest) > limits.oldest_pending_warning_s:
        report.add(
            WARNING,
            f"queue {name}",
            f"the oldest ready job has waited {_minutes(float(oldest))} and has not started ({workers_text})",
            advice(
                f"queue {name}: jobs wait {_minutes(float(oldest))} and more before they start - check that its "
                f"{workers_text} are not busy with long jobs (",
                performance_page("GET /api/monitoring/slow"),
                "), add workers, or move slow jobs to their own queue",
            ),
        )
    if int(stats["failed"]) > limits.failed_warning:
        report.add(
            WARNING,
            f"queue {name}",
            f"{int(stats['failed']):,} jobs failed in the last hour",
            advice(
                f"queue {name}: see ",
                failed_page("GET /api/monitoring/failures"),
                " for the causes, then retry with ",
                Ref("POST /api/admin/queue/retry", "failed", "“Retry all failed” on the Failed page"),
            ),
        )
    if recent is not None:
        _assess_recent(report, name, pending, workers_text, limits, recent)


def _assess_recent(
    report: Report, name: str, pending: int, workers_text: str, limits: HealthThresholds, recent: WindowStats
) -> None:
    """The p95 wait (SPEC.md) and the retry rate over the recent window, when there are enough samples."""
    window = f"{limits.recent_window_s // 60} min"
    p95_wait = recent.wait_percentile(0.95) if recent.wait_count >= limits.min_samples else None
    if p95_wait is not None and p95_wait > limits.wait_warning_ms:
        report.add(
            WARNING,
            f"queue {name}",
            f"p95 wait {_ms(p95_wait)} over the last {window} ({recent.wait_count:,} jobs finished; "
            f"{_ms(limits.wait_warning_ms)} allowed), {pending:,} pending, {workers_text}",
            f"queue {name}: p95 wait {_ms(p95_wait)} (over {_ms(limits.wait_warning_ms)}) with {workers_text} - "
            "add workers or raise their concurrency (`celery worker -c`), or move long jobs to their own queue",
        )
    rate = recent.retry_rate if recent.attempts >= limits.min_samples else None
    if rate is not None and rate > limits.retry_rate_warning:
        report.add(
            WARNING,
            f"queue {name}",
            f"{100 * rate:.0f} % of the attempts that ended in the last {window} ended in a retry "
            f"({recent.retried:,} of {recent.attempts:,})",
            advice(
                f"queue {name}: {100 * rate:.0f} % of attempts are retried - ",
                performance_page("GET /api/monitoring/performance"),
                " names the classes and ",
                failed_page("GET /api/monitoring/failures"),
                " the errors; fix the cause, stop retrying errors that "
                "cannot succeed (dont_retry_on), or lengthen the backoff if a dependency is overloaded",
            ),
        )
