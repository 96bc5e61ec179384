"""`flask queues list` and `flask queues settings`: the API's queue settings at a shell."""

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
    name = f"q-{unique}"
    yield name
    db.session.rollback()
    db.session.execute(delete(QueueSettings).where(QueueSettings.name == name))
    db.session.commit()
    redis_client.hdel(redis_keys.QUEUE_WEIGHTS, name)
    redis_client.hdel(redis_keys.RATE_LIMIT_QUEUES, name)
    queue_limits.forget_cache()
    forget_weights()


def run(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["queues", *args])


def test_settings_changes_what_is_given_and_clears_what_is_named(app: Any, queue: str, client: Any, auth: Any) -> None:
    result = run(app, "settings", queue, "--max-attempts", "5", "--weight", "3", "--rate-limit", "100/60",
                 "--no-encrypted", "--max-pending", "50")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "max_attempts=5" in result.output and "rate_limit=100/60s" in result.output
    view = client.get(f"/api/queues/{queue}", headers=auth("viewer")).get_json()
    assert (view["max_attempts"], view["weight"], view["max_pending"], view["encrypted"]) == (5, 3, 50, False)
    assert view["rate_limit"]["limit"] == 100
    cleared = run(app, "settings", queue, "--clear", "weight", "--clear", "rate_limit")
    assert cleared.exit_code == 0, cleared.output
    assert "weight=1 " in cleared.output and "rate_limit=-" in cleared.output and "max_attempts=5" in cleared.output
    audit = db.session.scalars(select(AuditLog).where(AuditLog.target_id == queue)).all()
    assert [(a.action, a.actor) for a in audit] == [("queue.settings.update", "cli")] * 2


def test_settings_without_options_shows_the_queue(app: Any, queue: str) -> None:
    result = run(app, "settings", queue)
    assert result.exit_code == 0 and result.output.startswith(f"{queue}  max_attempts=3")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-attempts", "0"], "max_attempts must be from 1 to 100"),
        (["--weight", "500"], "weight must be from 1 to 100"),
        (["--rate-limit", "lots"], "N/SECONDS"),
        (["--clear", "colour"], "colour"),
        (["--weight", "2", "--clear", "weight"], "not both"),
    ],
)
def test_bad_input_is_one_readable_line_and_changes_nothing(
    app: Any, queue: str, args: list[str], message: str
) -> None:
    result = run(app, "settings", queue, *args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output
    assert db.session.get(QueueSettings, queue) is None


def test_bad_queue_names_are_refused(app: Any) -> None:
    result = run(app, "settings", "no spaces", "--weight", "2")
    assert result.exit_code == 1 and "queue must be 1-100 characters" in result.output


def test_list_shows_every_configured_queue(app: Any, queue: str) -> None:
    run(app, "settings", queue, "--max-pending", "7")
    result = run(app, "list")
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if line.startswith(f"{queue} "))
    assert "max_pending=7" in line and "(set: max_pending)" in line
    as_json = run(app, "list", "--json")
    assert f'"queue": "{queue}"' in as_json.output
