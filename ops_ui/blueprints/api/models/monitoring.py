"""Monitoring (API.md "Monitoring, queues, workers"): workers, stuck and slow jobs, performance,
and the figures of every queue: stats, health, metrics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from app.monitoring.stuck import MAX_PAGE
from ops_ui.blueprints.api.models.base import Answer, Instant, Query
from ops_ui.blueprints.api.models.jobs import QueueStats


class Worker(Answer):
    """A worker as its heartbeats describe it; offline ones stay listed for a while."""

    hostname: str
    status: str = Field(examples=["online", "offline"])
    last_heartbeat: Instant
    pool_size: int
    active: int
    processed: int
    queues: list[str]
    pid: int
    load_average: list[float]
    memory_mb: float
    started_at: Instant
    stopped_at: Instant | None


class Workers(Answer):
    workers: list[Worker]


class MonitoredJob(Answer):
    """A job in a monitoring answer, and why it is listed (`reasons`)."""

    id: str
    job_class: str
    queue: str
    status: str
    tenant_id: str
    worker_id: str | None
    started_at: Instant | None
    reasons: list[str]
    timeout_s: int


class StuckJob(MonitoredJob):
    running_s: float
    worker_status: str | None


class StuckJobs(Answer):
    """Processing jobs past timeout + grace (past_timeout) or on an offline worker (worker_offline)."""

    items: list[StuckJob]


class SlowJob(MonitoredJob):
    runtime_ms: int | None
    class_p95_ms: int | None


class SlowJobs(Answer):
    """Running, then recently finished, jobs past a multiple of their class's p95 or near their timeout."""

    items: list[SlowJob]


class MonitoringQuery(Query):
    limit: int = Field(50, ge=1, le=MAX_PAGE)


#: Longest window the performance view sums, in hours (a week).
MAX_HOURS = 24 * 7


class PerformanceQuery(Query):
    hours: Annotated[float, Field(gt=0, le=MAX_HOURS, description="the window, in hours")] = 1


class ClassPerformance(Answer):
    job_class: str
    completed: int
    failed: int
    success_rate: float | None
    throughput_per_minute: float
    avg_runtime_ms: float | None
    p95_runtime_ms: float | None
    max_runtime_ms: int
    avg_memory_mb: float | None
    recommendations: list[str]
    retried: int
    retry_rate: float | None
    avg_wait_ms: float | None
    p95_wait_ms: float | None


class QueueThroughput(Answer):
    queue: str
    throughput_per_minute: float
    pending: int
    starving: bool = Field(description="jobs wait and none finished in the window")


class Performance(Answer):
    window_hours: float
    classes: list[ClassPerformance]
    queues: list[QueueThroughput]
    recommendations: list[str]


class AllQueueStats(Answer):
    queues: list[QueueStats]


class HealthIssue(Answer):
    level: Literal["warning", "critical"]
    subject: str
    issue: str


class QueueHealth(Answer):
    status: Literal["healthy", "warning", "critical"]
    issues: list[HealthIssue]
    recommendations: list[str]


class Metrics(Answer):
    """The figures of /metrics as JSON: lists of {labels..., value} per series."""

    counters: dict[str, list[dict[str, Any]]]
    gauges: dict[str, Any]
