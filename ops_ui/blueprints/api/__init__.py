"""The REST API under /api (API.md). Every route needs a bearer token."""

from __future__ import annotations

from ops_ui.blueprints.api import (  # noqa: F401  (routes register on bp)
    batches,
    bulk,
    definitions,
    failures,
    jobs,
    limits,
    monitoring,
    openapi,
    performance,
    queue_metrics,
    queues,
    schedules,
    workers,
)
from ops_ui.blueprints.api.blueprint import bp as bp
