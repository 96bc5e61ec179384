"""Dashboard: queues, workers, recent and failed jobs, throughput and health at a glance.

The live part is one partial that htmx re-fetches every 5 s; everything in it comes from
aggregates, indexed live counts and the worker registry (app.monitoring.dashboard).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import request

from app.kernel import aggregates
from app.models import JobStatsMinute
from app.monitoring import dashboard as figures
from app.services import jobs as jobs_service
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import redis, render_page, tenant
from ops_ui.charts import bar_chart
from ops_ui.extensions import sql
from ops_ui.settings import app_settings

RECENT_JOBS = 10


def _totals(queues: list[Any], tenant_id: str | None, now: datetime) -> dict[str, Any]:
    """Figures of the stat cards: sums over queues, and the last hour's p95 over all of them."""
    scope = [] if tenant_id is None else [JobStatsMinute.__table__.c.tenant_id == tenant_id]
    hour = aggregates.window(sql().connection(), (now - timedelta(hours=1)).replace(second=0, microsecond=0), *scope)
    ages = [q.oldest_pending_age_s for q in queues if q.oldest_pending_age_s is not None]
    return {
        "pending": sum(q.pending for q in queues),
        "delayed": sum(q.delayed for q in queues),
        "processing": sum(q.processing for q in queues),
        "failed_hour": hour.failed,
        "throughput": round(hour.completed / 60, 2),
        "p95_ms": hour.runtime_percentile(0.95),
        "oldest_s": max(ages) if ages else None,
    }


@bp.get("/")
@console_role("viewer")
def dashboard() -> Any:
    window = figures.window_of(request.args.get("window"))
    now = datetime.now(UTC)
    scope = tenant()
    client = redis()
    queues = figures.all_queue_stats(sql(), scope, client)
    workers = figures.worker_summary(client, app_settings())
    report = figures.health_report(sql(), client, app_settings(), scope, queues, workers.workers)
    recent, _ = jobs_service.list_jobs(sql(), jobs_service.JobFilter(tenant_id=scope), limit=RECENT_JOBS)
    chart = figures.series(sql(), scope, window, now)
    unit = "minute" if window == "hour" else "15 minutes"
    return render_page(
        "console/dashboard.html",
        "console/dashboard_live.html",
        window=window,
        windows=list(figures.WINDOWS),
        queues=queues,
        totals=_totals(queues, scope, now),
        workers=workers,
        health=report,
        recent=recent,
        failures=figures.failure_counts(sql(), scope, now),
        finished_chart=bar_chart(chart.labels, chart.finished),
        failed_chart=bar_chart(chart.labels, {"failed": chart.finished["failed"]}),
        unit=unit,
        fresh_install=not recent,
        all_tenants=scope is None,
        updated_at=now,
    )
