"""Slow jobs (M3): past a multiple of their class's own p95, or running near their timeout.

A class's p95 comes from its newest completed executions only (the (job_class, created_at)
index, at most `p95_sample` rows) and is cached in Redis, so a page view costs one small
query per class at most once per cache period.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app import redis_keys
from app.config import Settings
from app.models import ExecutionStatus, JobExecution
from app.monitoring.stuck import class_timeouts, job_summary, processing_rows, running_seconds

NEAR_TIMEOUT = "near_timeout"
PAST_P95 = "past_p95"


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


def class_p95(session: Session, redis: Any, settings: Settings, job_class: str) -> int | None:
    """p95 runtime (ms) of the class's newest completed runs; None with too few of them."""
    config = settings.monitoring
    key = redis_keys.p95_cache(job_class)
    cached = redis.get(key) if config.p95_cache_s else None
    if cached is not None:
        raw = cached.decode() if isinstance(cached, bytes) else str(cached)
        return int(raw) if raw != "none" else None
    runtimes = [
        int(ms)
        for ms in session.scalars(
            select(JobExecution.execution_time_ms)
            .where(
                JobExecution.job_class == job_class,
                JobExecution.status == ExecutionStatus.COMPLETED.value,
                JobExecution.execution_time_ms.is_not(None),
            )
            .order_by(JobExecution.created_at.desc())
            .limit(config.p95_sample)
        )
        if ms is not None
    ]
    p95 = percentile(runtimes, 0.95) if len(runtimes) >= config.p95_min_samples else None
    if config.p95_cache_s:
        redis.set(key, str(p95) if p95 is not None else "none", ex=config.p95_cache_s)
    return p95


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
    p95s: dict[str, int | None] = {}

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
