"""Dispatch at broker speed (issue 15): definitions kept per process yet never stale, the row
and its message agreeing on the publish time, durable SQLite commits, and `dispatch_many`.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from celery.utils.saferepr import saferepr
from sqlalchemy import delete, select, text

from app.backends.arguments_repr import arguments_repr
from app.db import db
from app.errors import QueueFull, ValidationError
from app.kernel import dispatch_defaults
from app.models import JobDefinition, JobExecution
from app.models.queue_settings import QueueSettings
from app.monitoring.queue_stats import broker_depth, broker_queue_keys
from app.testing import fake_queue
from tasks.demo import Echo
from tests.conftest import ROOT

pytestmark = pytest.mark.redis


@pytest.fixture()
def queue(app: Any, unique: str, redis_client: Any) -> Iterator[str]:
    name = f"fast-{unique}"
    yield name
    db.session.rollback()
    db.session.execute(delete(QueueSettings).where(QueueSettings.name == name))
    db.session.commit()
    for key in broker_queue_keys(name):
        redis_client.delete(key)


def rows(queue: str) -> list[JobExecution]:
    db.session.rollback()
    return list(db.session.scalars(select(JobExecution).where(JobExecution.queue == queue)))


# -- the argument reprs in the headers --------------------------------------------------------
def _value(rnd: random.Random, depth: int) -> Any:
    alphabet = string.ascii_letters + " '\"\\\n\té€"
    pick = rnd.random()
    if depth > 4 or pick < 0.4:
        return rnd.choice(
            [None, True, rnd.randint(-(10**12), 10**12), rnd.random() * 1e6, "".join(rnd.choices(alphabet, k=6))]
        )
    if pick < 0.75:
        return {"".join(rnd.choices(alphabet, k=3)): _value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))}
    return [_value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]


def test_argument_reprs_are_saferepr_s_text_exactly() -> None:
    rnd = random.Random(15)
    for _ in range(5000):
        value = {"payload": _value(rnd, 0), "long": "x" * rnd.choice([0, 900, 1100])}
        for maxlen, levels in ((1024, 3), (60, 3), (1024, 1), (1024, 0)):
            assert arguments_repr(value, maxlen, levels) == saferepr(value, maxlen, maxlevels=levels)


# -- definitions and queue settings, kept per process ---------------------------------------
def test_a_definition_deactivated_by_another_process_refuses_the_next_dispatch_here(
    app: Any, queue: str, recording_publisher: list[Any]
) -> None:
    from app.jobs.celery_backend import sync_registry_definitions

    sync_registry_definitions()
    Echo.on_queue(queue).dispatch(value=1)  # this process now keeps demo.echo's definition
    edit = (
        "from ops_ui import create_app\n"
        "from app.db import db\n"
        "from app.services.definitions import Limits, update_definition\n"
        "with create_app({'TESTING': True}).app_context():\n"
        "    update_definition(db.session, 'demo.echo', None, {'is_active': False}, Limits(900))\n"
    )
    try:
        subprocess.run([sys.executable, "-c", edit], cwd=ROOT, env=dict(os.environ), check=True, timeout=60)
        with pytest.raises(ValidationError, match="inactive"):
            Echo.on_queue(queue).dispatch(value=2)
    finally:
        row = db.session.scalar(
            select(JobDefinition).where(JobDefinition.job_class == "demo.echo", JobDefinition.tenant_id.is_(None))
        )
        assert row is not None
        row.is_active = True
        db.session.commit()
    assert len(recording_publisher) == 1
    Echo.on_queue(queue).dispatch(value=3)  # active again, seen at once: this process edited it


def test_a_queue_made_encrypted_encrypts_the_very_next_dispatch(
    app: Any, client: Any, auth: Any, queue: str, recording_publisher: list[Any]
) -> None:
    from cryptography.fernet import Fernet

    from tests.crypto_keys import use_keys

    with use_keys(Fernet.generate_key().decode()):
        Echo.on_queue(queue).dispatch(value="clear")
        assert client.put(f"/api/queues/{queue}", json={"encrypted": True}, headers=auth("admin")).status_code == 200
        Echo.on_queue(queue).dispatch(value="secret")
    assert [job.encrypted for job in recording_publisher] == [False, True]


def test_an_edit_moves_the_token_every_process_checks(app: Any, redis_client: Any, queue: str) -> None:
    from app import redis_keys

    before = redis_client.get(redis_keys.DISPATCH_DEFAULTS_TOKEN)
    db.session.add(QueueSettings(name=queue, max_attempts=3))
    db.session.commit()
    after = redis_client.get(redis_keys.DISPATCH_DEFAULTS_TOKEN)
    assert after is not None and after != before
    db.session.rollback()  # a rolled-back write announces nothing
    db.session.add(QueueSettings(name=f"{queue}-x", max_attempts=3))
    db.session.flush()
    db.session.rollback()
    assert redis_client.get(redis_keys.DISPATCH_DEFAULTS_TOKEN) == after
    assert isinstance(dispatch_defaults.current(redis_client), dispatch_defaults.DispatchDefaults)


# -- the row and its message -------------------------------------------------------------------
def test_the_row_and_its_message_record_the_same_publish_time(app: Any, queue: str, redis_client: Any) -> None:
    job_id = Echo.on_queue(queue).dispatch(value=1)

    (raw,) = [raw for key in broker_queue_keys(queue) for raw in redis_client.lrange(key, 0, -1)]
    message = json.loads(raw)
    (row,) = rows(queue)
    assert message["headers"]["id"] == row.id == job_id
    assert row.published_at is not None
    assert abs(row.published_at.timestamp() - message["headers"]["celeriac_ts"]) < 1e-5


def test_sqlite_commits_wait_for_the_disk(app: Any) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL commits are durable by its own default (synchronous_commit=on)")
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


# -- dispatch_many -------------------------------------------------------------------------------
def test_dispatch_many_records_and_queues_each_payload_with_the_shared_options(
    app: Any, queue: str, redis_client: Any
) -> None:
    ids = Echo.dispatch_many([{"value": n} for n in range(50)], queue=queue, priority=8, tags=["x"], delay=5)

    recorded = {row.id: row for row in rows(queue)}
    assert list(recorded) != [] and set(recorded) == set(ids) and len(ids) == 50
    assert [recorded[job_id].payload for job_id in ids] == [{"value": n} for n in range(50)]
    assert {(row.status, row.priority, tuple(row.tags or []), row.eta is not None) for row in recorded.values()} == {
        ("pending", 8, ("x",), True)
    }
    assert broker_depth(redis_client, queue) == 50


def test_dispatch_many_queues_nothing_when_one_payload_is_refused(app: Any, queue: str, redis_client: Any) -> None:
    payloads: list[dict[str, Any]] = [{"value": n} for n in range(10)]
    payloads[7] = {"value": float("nan")}

    with pytest.raises(ValidationError, match=r"jobs\[7\]: payload"):
        Echo.dispatch_many(payloads, queue=queue)
    assert rows(queue) == [] and broker_depth(redis_client, queue) == 0


def test_dispatch_many_respects_max_pending_all_or_nothing(
    app: Any, client: Any, auth: Any, queue: str, redis_client: Any
) -> None:
    client.put(f"/api/queues/{queue}", json={"max_pending": 5}, headers=auth("admin"))
    with pytest.raises(QueueFull):
        Echo.dispatch_many([{"value": n} for n in range(6)], queue=queue)
    assert rows(queue) == []
    assert len(Echo.dispatch_many([{"value": n} for n in range(5)], queue=queue)) == 5


def test_dispatch_many_refuses_what_needs_one_dispatch_at_a_time(app: Any, queue: str) -> None:
    with pytest.raises(ValidationError, match="unique_for"):
        Echo.on_queue(queue).unique(60).dispatch_many([{"value": 1}])
    with pytest.raises(TypeError, match="unknown dispatch option"):
        Echo.dispatch_many([{"value": 1}], queu=queue)


def test_dispatch_many_is_captured_by_the_fake_queue(app: Any, queue: str) -> None:
    with fake_queue() as fake:
        ids = Echo.dispatch_many([{"value": 1}, {"value": 2}], queue=queue)
        fake.assert_pushed_times(Echo, 2)
        fake.assert_pushed_on(queue, Echo)
    assert len(ids) == 2 and rows(queue) == []


def test_the_rows_of_a_bulk_are_stored_as_one_insert_stores_them(app: Any, unique: str) -> None:
    """The bulk paths (SQLite's executemany, PostgreSQL's COPY) write what SQLAlchemy writes."""
    import uuid

    from sqlalchemy import insert

    from app.backends.current import backends
    from app.config import get_settings
    from app.kernel.dispatching import DispatchSpec, resolve
    from app.kernel.row_insert import COPY_FROM_ROWS, TABLE, insert_rows
    from app.kernel.writer import pending_values

    specs = [
        DispatchSpec(
            "demo.echo",
            {"value": n, "text": "é'x"},
            queue=f"rows-{unique}",
            delay_s=5 if n % 2 else None,
            expires_s=10 if n % 3 == 0 else None,
            tags=["a"] if n % 2 else None,
            timeout_s=30,
            concurrency_key="k",
        )
        for n in range(COPY_FROM_ROWS + 10)
    ]
    jobs = [resolve(spec, backends().registry.get("demo.echo"), None, get_settings()) for spec in specs]
    bulk = [pending_values(job, None, 1_700_000_000.25) for job in jobs]
    single = [{**values, "id": str(uuid.uuid4())} for values in bulk]
    with db.engine.begin() as connection:
        insert_rows(connection, bulk)
    with db.engine.begin() as connection:
        connection.execute(insert(TABLE), single)

    columns = ", ".join(f"CAST({name} AS TEXT)" for name in bulk[0] if name != "id")
    query = text(f"SELECT {columns} FROM job_executions WHERE id = :id")
    with db.engine.connect() as connection:
        for ours, theirs in zip(bulk, single, strict=True):
            assert (
                connection.execute(query, {"id": ours["id"]}).one()
                == connection.execute(query, {"id": theirs["id"]}).one()
            )
