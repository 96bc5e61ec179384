"""Batch, chain and dependency rules that need no worker: sizes, all-or-nothing, cycles."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from app.composition.batches import BatchRequest, create_batch, create_chain
from app.composition.dependencies import check_dependencies
from app.composition.hub import Hub
from app.errors import ValidationError
from app.kernel.dispatching import DispatchSpec, ResolvedJob
from app.kernel.writer import pending_row
from app.models import JobBatch, JobExecution

pytestmark = pytest.mark.redis


class Recording:
    captures_dispatches = False

    def __init__(self) -> None:
        self.published: list[ResolvedJob] = []

    def publish(self, job: ResolvedJob) -> None:
        self.published.append(job)


def deps(settings: Any, redis_client: Any, **changes: Any) -> dict[str, Any]:
    from app.backends.current import backends

    return {
        "registry": backends().registry,
        "publisher": Recording(),
        "settings": dataclasses.replace(settings, **changes),
        "hub": Hub(redis_client),
    }


def echo(**options: Any) -> DispatchSpec:
    return DispatchSpec(job_class="demo.echo", payload={"value": 1}, tenant_id="acme", **options)


def test_oversized_batch_is_refused_before_anything_is_written(app: Any, settings: Any, redis_client: Any) -> None:
    from app.db import db

    before = db.session.query(JobBatch).count()
    parts = deps(settings, redis_client, max_batch_jobs=2)
    with pytest.raises(ValidationError, match="most allowed is 2"):
        create_batch(db.session, BatchRequest("acme", [echo(), echo(), echo()]), **parts)
    assert db.session.query(JobBatch).count() == before
    assert parts["publisher"].published == []


def test_dependencies_and_uniqueness_are_refused_inside_batches_and_chains(
    app: Any, settings: Any, redis_client: Any
) -> None:
    from app.db import db

    parts = deps(settings, redis_client)
    with pytest.raises(ValidationError, match=r"jobs\[1\]: depends_on and unique_for"):
        create_batch(db.session, BatchRequest("acme", [echo(), echo(unique_for=10)]), **parts)
    with pytest.raises(ValidationError, match="catch: unknown job class"):
        create_chain(db.session, "acme", [echo()], DispatchSpec(job_class="nope"), None, **parts)
    assert parts["publisher"].published == []


def test_chain_publishes_only_its_first_step(app: Any, settings: Any, redis_client: Any) -> None:
    from app.db import db

    parts = deps(settings, redis_client)
    created = create_chain(db.session, "acme", [echo(), echo(), echo()], None, "three", **parts)
    assert [j.job_id for j in parts["publisher"].published] == created.job_ids[:1]
    rows = {r.id: r for r in db.session.query(JobExecution).filter(JobExecution.chain_id == created.id)}
    assert [rows[i].chain_step for i in created.job_ids] == [0, 1, 2]
    assert rows[created.job_ids[2]].depends_on == [created.job_ids[1]]


def _row(job_id: str, depends_on: list[str] | None = None, tenant: str = "acme") -> JobExecution:
    job = ResolvedJob(
        job_id=job_id,
        job_class="demo.echo",
        payload={},
        tenant_id=tenant,
        queue="default",
        priority=5,
        delay_s=0,
        max_attempts=1,
        backoff=None,
        timeout_s=None,
        tags=[],
        retry_of=None,
        job_definition_id=None,
        depends_on=depends_on,
    )
    return pending_row(job, None)


def test_cycles_self_references_and_foreign_ids_are_refused(app: Any, unique: str) -> None:
    from app.db import db

    a, b, c = f"{unique}-a", f"{unique}-b", f"{unique}-c"
    db.session.add_all([_row(a, [c]), _row(b, [a]), _row(f"{unique}-x", tenant="other")])
    db.session.commit()
    with pytest.raises(ValidationError, match="cycle"):
        check_dependencies(db.session, c, "acme", [b])
    with pytest.raises(ValidationError, match="itself"):
        check_dependencies(db.session, a, "acme", [a])
    with pytest.raises(ValidationError, match="unknown jobs"):
        check_dependencies(db.session, c, "acme", [f"{unique}-x"])
    check_dependencies(db.session, f"{unique}-new", "acme", [a, b])


def test_a_batch_member_with_a_long_delay_waits_in_the_scheduled_set(
    app: Any, settings: Any, redis_client: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from app.db import db
    from app.kernel.scheduled import ScheduledSet

    parts = deps(settings, redis_client, scheduled_after_s=60, max_delay_s=30 * 24 * 3600)
    created = create_batch(db.session, BatchRequest("acme", [echo(), echo(delay_s=3 * 24 * 3600)]), **parts)
    now_id, later_id = created.job_ids
    # Only the first is a broker message; the other waits three days, due in the set and the row.
    assert [j.job_id for j in parts["publisher"].published] == [now_id]
    later = db.session.get(JobExecution, later_id)
    assert later is not None and later.status == "pending" and later.published_at is None
    assert later.due_at is not None and later.due_at - datetime.now(UTC) > timedelta(days=2, hours=23)
    assert ScheduledSet(redis_client).scores([later_id]) == [pytest.approx(later.due_at.timestamp())]
    # A chain's first step waits in the set too; a later step once it is released
    # (tests/unit/test_held_chain_steps.py).
    chained = create_chain(db.session, "acme", [echo(delay_s=3600), echo(delay_s=3600)], None, "slow", **parts)
    assert [j.job_id for j in parts["publisher"].published] == [now_id]
    first = db.session.get(JobExecution, chained.job_ids[0])
    assert first is not None and first.due_at is not None and first.published_at is None
    assert ScheduledSet(redis_client).scores(chained.job_ids) == [pytest.approx(first.due_at.timestamp()), None]
