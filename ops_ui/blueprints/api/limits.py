"""Limits with live usage: GET /api/limits; PUT /api/limits/concurrency/<key> (admin, audited).

Rate limits are shared by every tenant (as queues are); concurrency keys belong to the
token's tenant, which is the only one it sees and edits (app.ratelimit.limits_view).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify

from app.ratelimit import limits_view
from app.redis_client import get_redis
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.limits import ConcurrencyKeyPath, ConcurrencyLimit, ConcurrencyLimitBody, Limits
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.validation import read_body
from ops_ui.trail import record_action


def _settings() -> Any:
    return current_app.extensions["celeriac_settings"]


def _redis() -> Any:
    return get_redis(_settings().redis_url)


def _tenant() -> str:
    """API tokens always belong to a tenant; a tenantless principal acts for the default one."""
    tenant: str | None = g.principal.tenant_id
    return tenant if tenant is not None else str(_settings().default_tenant)


@bp.get("/limits")
@api_auth("viewer")
@operation(
    "Rate limits (every tenant's) and your concurrency limits, with live usage",
    answers={200: (Limits, "the limits")},
)
def list_limits() -> Any:
    return jsonify(limits_view.all_limits(_redis(), _settings(), g.principal.tenant_id))


@bp.put("/limits/concurrency/<path:key>")
@api_auth("admin")
@operation(
    "Set a concurrency key's limit now (a raised limit starts waiting jobs at once); it holds until "
    "set again here or by a dispatch naming concurrency_limit",
    path=ConcurrencyKeyPath,
    body=ConcurrencyLimitBody,
    answers={200: (ConcurrencyLimit, "the key with its new limit and live usage")},
)
def put_concurrency_limit(key: str) -> Any:
    body = read_body(ConcurrencyLimitBody)
    tenant = _tenant()
    before = limits_view.concurrency_limit(_redis(), tenant, key)
    after = limits_view.set_concurrency_limit(_redis(), _settings(), tenant, key, body.limit)
    record_action(
        "concurrency.limit.set", "concurrency_key", key, before={"limit": before["limit"]}, after={"limit": body.limit}
    )
    return jsonify(after)
