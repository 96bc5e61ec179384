"""Performance per job class: the figures of GET /api/monitoring/performance, with charts.

The table and recommendations come from app.monitoring.performance (the API's functions),
recommendations with links to console pages; the charts of one class from the per-minute
aggregates. Celeriac's own maintenance tasks are left out unless "show system jobs" is
ticked (their failures are still advised about). htmx refreshes the live part every 15 s.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import request

from app.monitoring import dashboard as figures
from app.monitoring.performance import performance as class_performance
from app.monitoring.performance import queue_throughput, starving_advice
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import render_page, tenant
from ops_ui.charts import bar_chart
from ops_ui.extensions import sql
from ops_ui.settings import app_settings


@bp.get("/performance")
@console_role("viewer")
def performance() -> Any:
    window = figures.window_of(request.args.get("window"))
    length, bucket, _fmt = figures.WINDOWS[window]
    now = datetime.now(UTC)
    since = (now - length).replace(second=0, microsecond=0)
    scope = tenant()
    conn = sql().connection()
    # One retry-rate threshold for health and performance, as the API uses.
    every_class = class_performance(conn, scope, since, now, app_settings().health.retry_rate_warning)
    show_system = request.args.get("system") == "1"
    classes = [c for c in every_class if show_system or not c.system]
    queues = queue_throughput(conn, scope, since, now)
    # A hidden system class still brings its failure advice (its only advice).
    recommendations = [advice for item in every_class for advice in item.advice] + starving_advice(queues)
    names = [c.job_class for c in classes]
    chosen = request.args.get("job_class") or (names[0] if names else None)
    if chosen is not None and chosen not in names:
        chosen = names[0] if names else None  # a class with nothing in this window: show the busiest
    charts = None
    if chosen is not None:
        data = figures.series(sql(), scope, window, now, job_class=chosen)
        charts = {
            "throughput": bar_chart(data.labels, {"throughput": data.throughput_per_minute(bucket)}),
            "p95": bar_chart(data.labels, {"p95": data.p95_runtime_ms}),
            "finished": bar_chart(data.labels, data.finished),
        }
    return render_page(
        "console/performance.html",
        "console/performance_live.html",
        window=window,
        windows=list(figures.WINDOWS),
        classes=classes,
        show_system=show_system,
        hidden_system=len(every_class) - len(classes),
        queues=queues,
        recommendations=recommendations,
        chosen=chosen,
        charts=charts,
        unit="minute" if window == "hour" else "15 minutes",
        updated_at=now,
    )
