"""Console queue settings: shown on the Queues page, an admin form with CSRF, errors and audit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import delete, select

from app import redis_keys
from app.control.weighted_cycle import forget_weights
from app.db import db
from app.models import AuditLog, QueueSettings
from app.ratelimit import queue_limits

pytestmark = [pytest.mark.redis]


@pytest.fixture()
def queue(unique: str, redis_client: redis.Redis) -> Iterator[str]:
    """A queue known through its rate limit (set through the one store)."""
    name = f"qs-{unique}"
    queue_limits.set_limit(redis_client, name, 7, 60)
    yield name
    db.session.rollback()
    db.session.execute(delete(QueueSettings).where(QueueSettings.name == name))
    db.session.commit()
    redis_client.hdel(redis_keys.QUEUE_WEIGHTS, name)
    redis_client.hdel(redis_keys.RATE_LIMIT_QUEUES, name)
    queue_limits.forget_cache()
    forget_weights()


def form(**values: str) -> dict[str, str]:
    base = {"max_attempts": "", "retry_after": "", "timeout": "", "encrypted": "", "rate_limit": "7/60",
            "weight": "", "max_pending": ""}  # fmt: skip
    return {**base, **values}


def settings_url(queue: str) -> str:
    return f"/queues/{queue}/settings"


def test_everyone_sees_settings_but_only_admins_get_the_form(console: Any, queue: str) -> None:
    viewer = console("viewer")
    page = viewer.get("/queues").get_data(as_text=True)
    assert 'id="queue-settings"' in page and f'id="queue-settings-{queue}"' in page
    assert settings_url(queue) not in page
    assert viewer.get(settings_url(queue)).status_code == 403
    assert console("operator").post(settings_url(queue), form(weight="3")).status_code == 403
    assert db.session.get(QueueSettings, queue) is None
    admin_page = console("admin").get("/queues").get_data(as_text=True)
    assert settings_url(queue) in admin_page


def test_admin_saves_settings_and_the_change_is_audited(
    console: Any, queue: str, redis_client: redis.Redis, settings: Any
) -> None:
    admin = console("admin")
    edit = admin.get(settings_url(queue))
    assert edit.status_code == 200 and 'value="7/60"' in edit.get_data(as_text=True)
    saved = admin.post(settings_url(queue), form(max_attempts="5", weight="3", encrypted="no", rate_limit="10/1"))
    assert saved.status_code == 302
    db.session.expire_all()
    row = db.session.get(QueueSettings, queue)
    assert row is not None and (row.max_attempts, row.weight, row.encrypted) == (5, 3, False)
    limit = queue_limits.get_limit(redis_client, settings, queue)
    assert limit is not None and (limit.limit, limit.per) == (10, 1)
    page = admin.get("/queues").get_data(as_text=True)
    assert "Saved the settings of" in page
    entries = db.session.scalars(select(AuditLog).where(AuditLog.target_id == queue)).all()
    assert [e.action for e in entries] == ["queue.settings.update"] and entries[0].actor == f"user:{admin.user_id}"


def test_an_empty_field_clears_what_was_set(console: Any, queue: str) -> None:
    admin = console("admin")
    admin.post(settings_url(queue), form(weight="4"))
    admin.post(settings_url(queue), form(weight=""))
    db.session.expire_all()
    row = db.session.get(QueueSettings, queue)
    assert row is not None and row.weight is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_attempts": "0"}, "max_attempts must be from 1 to 100"),
        ({"weight": "lots"}, "weight must be a whole number"),
        ({"rate_limit": "fast"}, "rate_limit must be"),
        ({"timeout": "99999999"}, "timeout must be from 1 to"),
        ({"encrypted": "maybe"}, "encrypted must be yes, no or default"),
    ],
)
def test_bad_input_shows_form_errors_not_500(console: Any, queue: str, values: dict[str, str], message: str) -> None:
    answer = console("admin").post(settings_url(queue), form(**values))
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "Nothing was saved" in html and message in html
    assert db.session.get(QueueSettings, queue) is None


def test_posting_without_csrf_is_refused(console: Any, queue: str) -> None:
    answer = console("admin").post(settings_url(queue), form(weight="3"), csrf=False)
    assert answer.status_code in (400, 422)
    assert db.session.get(QueueSettings, queue) is None


def test_a_bad_queue_name_redirects_with_a_message(console: Any) -> None:
    admin = console("admin")
    answer = admin.get(settings_url("bad%20name"))
    assert answer.status_code == 302
    assert "queue must be 1-100 characters" in admin.get("/queues").get_data(as_text=True)

