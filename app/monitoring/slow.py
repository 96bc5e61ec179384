"""Slow jobs (M3): past a multiple of their class's own p95, or running near their timeout.

A class's p95 is the one the per-minute aggregates give (the runtime histogram summed over
the last `P95_WINDOW`, all tenants: the class's code is shared), the same figure
`/api/monitoring/performance` shows. It is cached in Redis, and the classes missing from
the cache are read in one grouped query.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app import redis_keys
from app.config import Settings
from app.kernel import aggregates
from app.models import ExecutionStatus, JobExecution, JobStatsMinute
from app.monitoring.stuck import class_timeouts, job_summary, processing_rows, running_seconds

NEAR_TIMEOUT = "near_timeout"
PAST_P95 = "past_p95"
#: Window of aggregates a class's p95 is read from.
P95_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class SlowJob:
    row: JobExecution
    reasons: list[str]
    runtime_ms: int
    p95_ms: int | None
    timeout_s: int

    def as_dict(self) -> dict[str, Any]:
        return {
            **job_summary(self.row),
            "reasons": self.reasons,
            "runtime_ms": self.runtime_ms,
            "class_p95_ms": self.p95_ms,
            "timeout_s": self.timeout_s,
        }


def percentile(values: list[int], q: float) -> int:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _decode(raw: Any) -> int | None:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return int(text) if text != "none" else None


def class_p95s(session: Session, redis: Any, settings: Settings, classes: Iterable[str]) -> dict[str, int | None]:
    """p95 runtime (ms) of each class over the last `P95_WINDOW` of aggregates (all tenants).

    None for a class with fewer completed runs than `p95_min_samples`. Cached per class;
    the classes missing from the cache cost one grouped query together.
    """
    config = settings.monitoring
    names = list(dict.fromkeys(classes))
    if not names:
        return {}
    found: dict[str, int | None] = {}
    if config.p95_cache_s:
        for name, raw in zip(names, redis.mget([redis_keys.p95_cache(n) for n in names]), strict=True):
            if raw is not None:
                found[name] = _decode(raw)
    missing = [name for name in names if name not in found]
    if missing:
        since = (datetime.now(UTC) - P95_WINDOW).replace(second=0, microsecond=0)
        table = JobStatsMinute.__table__
        stats = aggregates.windows(session.connection(), since, "job_class", table.c.job_class.in_(missing))
        pipe = redis.pipeline(transaction=False)
        for name in missing:
            window = stats.get(name)
            p95 = window.runtime_percentile(0.95) if window and window.runtime_count >= config.p95_min_samples else None
            found[name] = int(p95) if p95 is not None else None
            if config.p95_cache_s:
                pipe.set(
                    redis_keys.p95_cache(name), str(found[name]) if p95 is not None else "none", ex=config.p95_cache_s
                )
        if config.p95_cache_s:
            pipe.execute()
    return found


def class_p95(session: Session, redis: Any, settings: Settings, job_class: str) -> int | None:
    """p95 runtime (ms) of one class; see `class_p95s`."""
    return class_p95s(session, redis, settings, [job_class])[job_class]


def find_slow(
    session: Session,
    redis: Any,
    settings: Settings,
    tenant_id: str | None,
    limit: int = 50,
    now: float | None = None,
) -> list[SlowJob]:
    """Running jobs first (longest first), then recently finished ones (newest first)."""
    now = time.time() if now is None else now
    timeouts = class_timeouts(session)
    p95s = class_p95s(session, redis, settings, timeouts)

    def p95_of(job_class: str) -> int | None:
        if job_class not in p95s:
            p95s[job_class] = class_p95(session, redis, settings, job_class)
        return p95s[job_class]

    found = _running_slow(session, settings, tenant_id, now, timeouts, p95_of, limit)
    if len(found) < limit:
        found += _finished_slow(session, settings, tenant_id, now, timeouts, p95_of, limit - len(found))
    return found


def _running_slow(
    session: Session,
    settings: Settings,
    tenant_id: str | None,
    now: float,
    timeouts: dict[str, int],
    p95_of: Any,
    limit: int,
) -> list[SlowJob]:
    config = settings.monitoring
    found: list[SlowJob] = []
    for row in processing_rows(session, tenant_id):
        runtime_ms = int(running_seconds(row, now) * 1000)
        timeout = timeouts.get(row.job_class, settings.default_timeout_s)
        p95 = p95_of(row.job_class)
        reasons = []
        if p95 is not None and runtime_ms > config.slow_p95_factor * p95:
            reasons.append(PAST_P95)
        if runtime_ms > config.slow_timeout_ratio * timeout * 1000:
            reasons.append(NEAR_TIMEOUT)
        if reasons:
            found.append(SlowJob(row, reasons, runtime_ms, p95, timeout))
            if len(found) >= limit:
                break
    return found


def _finished_slow(
    session: Session,
    settings: Settings,
    tenant_id: str | None,
    now: float,
    timeouts: dict[str, int],
    p95_of: Any,
    limit: int,
) -> list[SlowJob]:
    """Finished in the window past the class's p95 multiple or its timeout ratio; one query."""
    config = settings.monitoring
    thresholds: dict[str, int] = {}
    for job_class, timeout in timeouts.items():
        limits = [config.slow_timeout_ratio * timeout * 1000]
        p95 = p95_of(job_class)
        if p95 is not None:
            limits.append(config.slow_p95_factor * p95)
        thresholds[job_class] = int(min(limits))
    if not thresholds:
        return []
    since = datetime.fromtimestamp(now - config.slow_window_s, UTC)
    query = select(JobExecution).where(
        JobExecution.created_at >= since,
        JobExecution.status.in_([ExecutionStatus.COMPLETED.value, ExecutionStatus.FAILED.value]),
        or_(*(and_(JobExecution.job_class == c, JobExecution.execution_time_ms > t) for c, t in thresholds.items())),
    )
    if tenant_id is not None:
        query = query.where(JobExecution.tenant_id == tenant_id)
    found: list[SlowJob] = []
    for row in session.scalars(query.order_by(JobExecution.created_at.desc()).limit(limit)):
        runtime_ms = int(row.execution_time_ms or 0)
        timeout = timeouts[row.job_class]
        p95 = p95_of(row.job_class)
        reasons = []
        if p95 is not None and runtime_ms > config.slow_p95_factor * p95:
            reasons.append(PAST_P95)
        if runtime_ms > config.slow_timeout_ratio * timeout * 1000:
            reasons.append(NEAR_TIMEOUT)
        found.append(SlowJob(row, reasons, runtime_ms, p95, timeout))
    return found
