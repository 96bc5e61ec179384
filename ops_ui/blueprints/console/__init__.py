"""The operations console (U1–U3, W2): server-rendered pages, htmx for live parts.

Every page but the login needs a session (`console_role`); every state-changing action is
a POST with a CSRF token that writes `audit_log` (`ops_ui.trail.record_action`). Each page
group is its own module; they all register their routes on `bp`.
"""

from __future__ import annotations

from ops_ui.blueprints.console import (  # noqa: F401  (routes register on bp)
    admin,
    audit_log,
    auth_views,
    composition,
    dashboard,
    definitions,
    dispatch_form,
    failed,
    groups,
    jobs,
    jobs_purge,
    limits,
    performance,
    queue_page,
    queue_settings,
    queues,
    retries,
    scheduled,
    schedules,
    workers,
)
from ops_ui.blueprints.console.blueprint import bp as bp
