"""Concurrency limits on the console's Queues page: live rows, admin form, roles, audit."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from sqlalchemy import select

from app.db import db
from app.models import AuditLog
from celeriac.concurrency import Slots, scoped_key

pytestmark = [pytest.mark.redis]


def test_the_queues_page_loads_the_panel_and_its_rows_show_live_usage(
    console: Any, redis_client: redis.Redis, unique: str
) -> None:
    slots = Slots(redis_client)
    key = scoped_key("acme", f"user:{unique}")
    slots.acquire(key, "a", limit=1, lease_s=30, message=None)
    slots.acquire(key, "b", limit=1, lease_s=30, message='{"task": "demo.echo"}')
    slots.set_limit(scoped_key("other", f"theirs-{unique}"), 4, lease_s=30)
    viewer = console("viewer")
    page = viewer.get("/queues").get_data(as_text=True)
    assert "Concurrency limits" in page and 'hx-get="/queues/limits"' in page
    assert "Set limit" not in page  # the form is for admins
    rows = viewer.get("/queues/limits", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f"user:{unique}" in rows and f"theirs-{unique}" not in rows
    assert '<td class="num" data-label="Running">1</td>' in rows
    assert '<td class="num" data-label="Waiting">1</td>' in rows


def test_an_admin_sets_a_limit_from_the_form_and_it_is_audited(
    console: Any, redis_client: redis.Redis, unique: str
) -> None:
    admin = console("admin")
    assert "Set limit" in admin.get("/queues").get_data(as_text=True)
    answer = admin.post("/queues/limits", {"key": f"user:{unique}", "limit": "3"}, follow_redirects=True)
    assert "set to 3" in answer.get_data(as_text=True)
    assert Slots(redis_client).limit(scoped_key("acme", f"user:{unique}")) == 3
    [entry] = db.session.scalars(select(AuditLog).where(AuditLog.target_id == f"user:{unique}")).all()
    assert (entry.action, entry.tenant_id, entry.after) == ("concurrency.limit.set", "acme", {"limit": 3})


@pytest.mark.parametrize("limit", ["0", "abc", "", "1000001"])
def test_a_bad_limit_is_refused_with_a_message(
    console: Any, redis_client: redis.Redis, unique: str, limit: str
) -> None:
    answer = console("admin").post("/queues/limits", {"key": f"k-{unique}", "limit": limit}, follow_redirects=True)
    assert answer.status_code == 200 and "limit must be an integer" in answer.get_data(as_text=True)
    assert Slots(redis_client).limit(scoped_key("acme", f"k-{unique}")) is None


def test_only_admins_post_and_only_with_a_csrf_token(console: Any, redis_client: redis.Redis, unique: str) -> None:
    assert console("operator").post("/queues/limits", {"key": f"k-{unique}", "limit": "2"}).status_code == 403
    assert console("admin").post("/queues/limits", {"key": f"k-{unique}", "limit": "2"}, csrf=False).status_code == 400
    assert Slots(redis_client).limit(scoped_key("acme", f"k-{unique}")) is None
