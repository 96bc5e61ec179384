"""The REST API under /api (API.md). Every route needs a bearer token."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

import ops_ui.blueprints.api.monitoring  # noqa: E402,F401  (workers, stuck and slow jobs: M2, M3)
from ops_ui.blueprints.api import (  # noqa: E402,F401  (routes register on bp)
    batches,
    definitions,
    failures,
    jobs,
    openapi,
    performance,
    queue_metrics,
    queues,
    schedules,
    workers,
)
