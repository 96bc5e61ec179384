"""GET /metrics: Prometheus text exposition (M5). Needs a bearer token like the API.

An API token reads its own tenant's series; a metrics token (`flask tokens create ...
--metrics`) reads every tenant's, each series labelled with its tenant, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, g
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from app.monitoring import metrics
from app.monitoring.workers import ONLINE, list_workers
from app.redis_client import get_redis
from ops_ui.auth import api_auth
from ops_ui.extensions import sql
from ops_ui.settings import app_settings

bp = Blueprint("metrics", __name__)


class _Snapshot(Collector):
    def __init__(self, snap: metrics.Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        return metrics.families(self.snap)


def snapshot() -> metrics.Snapshot:
    """One reading for the caller's tenant (None: a metrics token, which sees every tenant)."""
    settings = app_settings()
    redis_client = get_redis(settings.redis_url)
    snap = metrics.take(sql(), redis_client, g.principal.tenant_id)
    snap.workers_online = sum(1 for w in list_workers(redis_client, settings.monitoring) if w.status == ONLINE)
    return snap


@bp.get("/metrics")
@api_auth("viewer", metrics_token=True)
def prometheus() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snapshot()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
