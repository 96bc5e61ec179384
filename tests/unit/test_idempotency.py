"""Idempotency-Key (issue 11, item 6): a repeat gets the first answer and queues nothing.

Crash cases are set up as a crashed process leaves them: a claim row `in_progress` whose
lease ran out, with or without the job it was creating.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.db import db
from app.models import IdempotencyKey, JobBatch, JobExecution
from app.services import idempotency
from app.services.retention import purge_history
from tests.conftest import assert_problem
from tests.unit.test_api_outages import ClosedBroker

DISPATCH = "/api/jobs/dispatch"


def key() -> str:
    return f"key-{uuid.uuid4()}"


def with_key(headers: dict[str, str], value: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": value}


def jobs_with_class(job_class: str) -> int:
    return int(db.session.scalar(select(func.count()).where(JobExecution.job_class == job_class)) or 0)


def claim_row(value: str) -> IdempotencyKey:
    row = db.session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.key == value).execution_options(populate_existing=True)
    ).one()
    return row


def age_claim(value: str, seconds: float) -> None:
    """Make the claim look `seconds` old, as one whose process died that long ago."""
    past = datetime.now(UTC) - timedelta(seconds=seconds)
    db.session.execute(
        update(IdempotencyKey).where(IdempotencyKey.key == value).values(created_at=past, updated_at=past)
    )
    db.session.commit()


@pytest.fixture()
def headers(auth: Any) -> dict[str, str]:
    return auth("operator")


def test_repeat_returns_the_first_answer_and_queues_nothing(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    value = key()
    body = {"job_class": "demo.echo", "payload": {"value": 1, "n": [1, 2]}, "options": {"priority": 7}}
    first = client.post(DISPATCH, json=body, headers=with_key(headers, value))
    assert first.status_code == 201
    # The same body with its keys in another order and other spacing is the same body.
    text = '{"options":{"priority":7},  "payload": {"n": [1, 2], "value": 1}, "job_class": "demo.echo"}'
    again = client.post(DISPATCH, data=text, content_type="application/json", headers=with_key(headers, value))
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(recording_publisher) == 1
    assert claim_row(value).status == "done"


def test_same_key_with_another_body_is_422(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    value = key()
    assert client.post(DISPATCH, json={"job_class": "demo.echo"}, headers=with_key(headers, value)).status_code == 201
    other = client.post(
        DISPATCH, json={"job_class": "demo.echo", "payload": {"v": 2}}, headers=with_key(headers, value)
    )
    assert "different body" in assert_problem(other, 422)["detail"]
    assert len(recording_publisher) == 1


def test_keys_are_per_tenant_and_per_endpoint(client: Any, auth: Any, recording_publisher: list[Any]) -> None:
    value = key()
    body = {"job_class": "demo.echo", "jobs": [{"job_class": "demo.echo"}]}
    acme = client.post(DISPATCH, json=body, headers=with_key(auth("operator", "acme"), value))
    other = client.post(DISPATCH, json=body, headers=with_key(auth("operator", "globex"), value))
    batch = client.post("/api/batches", json=body, headers=with_key(auth("operator", "acme"), value))
    assert acme.status_code == other.status_code == batch.status_code == 201
    assert acme.get_json()["id"] != other.get_json()["id"]
    assert len(recording_publisher) == 3


def test_repeat_while_the_first_is_still_handled_is_409(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    value, body = key(), {"job_class": "demo.echo"}
    # A request with this key has just claimed it and is still working.
    idempotency.claim(
        db.session,
        tenant_id="acme",
        endpoint="POST /api/jobs/dispatch",
        key=value,
        body_hash=idempotency.request_hash(body),
        resource_ids={"job_id": str(uuid.uuid4())},
    )
    assert (
        "still being handled"
        in assert_problem(client.post(DISPATCH, json=body, headers=with_key(headers, value)), 409)["detail"]
    )
    assert recording_publisher == []


def test_claim_of_a_crashed_request_is_taken_over_with_the_same_job_id(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    value, body, job_id = key(), {"job_class": "demo.echo"}, str(uuid.uuid4())
    idempotency.claim(
        db.session,
        tenant_id="acme",
        endpoint="POST /api/jobs/dispatch",
        key=value,
        body_hash=idempotency.request_hash(body),
        resource_ids={"job_id": job_id},
    )
    age_claim(value, idempotency.LEASE.total_seconds() + 1)  # died before creating its job
    taken = client.post(DISPATCH, json=body, headers=with_key(headers, value))
    assert taken.status_code == 201 and taken.get_json()["id"] == job_id
    assert [job.job_id for job in recording_publisher] == [job_id]
    replay = client.post(DISPATCH, json=body, headers=with_key(headers, value))
    assert replay.get_json() == taken.get_json() and len(recording_publisher) == 1


def test_takeover_answers_with_the_job_a_crashed_request_already_created(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    value, job_class = key(), "demo.echo"
    body = {"job_class": job_class, "payload": {"marker": value}}
    first = client.post(DISPATCH, json=body, headers=with_key(headers, value))
    job_id = first.get_json()["id"]
    # The process died after creating and queueing the job, before storing its answer.
    db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == value)
        .values(status="in_progress", response_status=None, response_body=None)
    )
    db.session.commit()
    assert_problem(client.post(DISPATCH, json=body, headers=with_key(headers, value)), 409)  # lease not over
    age_claim(value, idempotency.LEASE.total_seconds() + 1)
    again = client.post(DISPATCH, json=body, headers=with_key(headers, value))
    assert again.status_code == 201 and again.get_json()["id"] == job_id
    assert len(recording_publisher) == 1
    count = db.session.scalar(
        select(func.count()).where(JobExecution.payload["marker"].as_string() == value)  # type: ignore[index]
    )
    assert count == 1


def test_a_refused_request_releases_its_key(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    value = key()
    refused = client.post(DISPATCH, json={"job_class": "demo.nope"}, headers=with_key(headers, value))
    assert_problem(refused, 422)
    fixed = client.post(DISPATCH, json={"job_class": "demo.echo"}, headers=with_key(headers, value))
    assert fixed.status_code == 201 and len(recording_publisher) == 1


def test_a_503_releases_its_key_so_the_retry_runs(client: Any, headers: dict[str, str]) -> None:
    from app.backends.current import replaced
    from app.backends.twins import MemoryPublisher

    value, body = key(), {"job_class": "demo.echo"}
    with replaced(publisher=ClosedBroker()):
        assert_problem(client.post(DISPATCH, json=body, headers=with_key(headers, value)), 503)
    recording = MemoryPublisher()
    with replaced(publisher=recording):
        retried = client.post(DISPATCH, json=body, headers=with_key(headers, value))
    assert retried.status_code == 201 and [job.job_id for job in recording.published] == [retried.get_json()["id"]]


@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_malformed_keys_are_422(
    client: Any, headers: dict[str, str], recording_publisher: list[Any], value: str
) -> None:
    response = client.post(DISPATCH, json={"job_class": "demo.echo"}, headers=with_key(headers, value))
    assert "Idempotency-Key" in assert_problem(response, 422)["detail"]
    assert recording_publisher == []


def test_longest_key_and_printable_punctuation_are_fine(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    for value in ("k" * 255, "a b~!@#$%^&*()"):
        assert (
            client.post(DISPATCH, json={"job_class": "demo.echo"}, headers=with_key(headers, value)).status_code == 201
        )


def test_batch_repeat_returns_the_same_ids_and_queues_nothing(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    value = key()
    body = {"name": "nightly", "jobs": [{"job_class": "demo.echo"}, {"job_class": "demo.echo"}]}
    first = client.post("/api/batches", json=body, headers=with_key(headers, value))
    assert first.status_code == 201
    again = client.post("/api/batches", json=body, headers=with_key(headers, value))
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert len(recording_publisher) == 2


def test_batch_takeover_answers_with_the_batch_a_crashed_request_created(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    value = key()
    body = {"jobs": [{"job_class": "demo.echo"}, {"job_class": "demo.echo"}, {"job_class": "demo.echo"}]}
    first = client.post("/api/batches", json=body, headers=with_key(headers, value)).get_json()
    db.session.execute(
        update(IdempotencyKey).where(IdempotencyKey.key == value).values(status="in_progress", response_status=None)
    )
    db.session.commit()
    age_claim(value, idempotency.LEASE.total_seconds() + 1)
    again = client.post("/api/batches", json=body, headers=with_key(headers, value))
    assert again.status_code == 201 and again.get_json() == first
    assert len(recording_publisher) == 3
    assert db.session.scalar(select(func.count()).where(JobBatch.id == first["id"])) == 1


def test_chain_repeat_returns_the_same_ids_and_queues_nothing(
    client: Any, headers: dict[str, str], recording_publisher: list[Any]
) -> None:
    value = key()
    body = {"jobs": [{"job_class": "demo.echo"}, {"job_class": "demo.echo"}]}
    first = client.post("/api/chains", json=body, headers=with_key(headers, value))
    assert first.status_code == 201
    db.session.execute(
        update(IdempotencyKey).where(IdempotencyKey.key == value).values(status="in_progress", response_status=None)
    )
    db.session.commit()
    age_claim(value, idempotency.LEASE.total_seconds() + 1)  # crashed after creating it
    again = client.post("/api/chains", json=body, headers=with_key(headers, value))
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert len(recording_publisher) == 1  # a chain queues its first step only


def test_a_key_older_than_24_hours_is_new_again_and_is_purged(
    client: Any, headers: dict[str, str], recording_publisher: list[Any], settings: Any
) -> None:
    value, body = key(), {"job_class": "demo.echo"}
    first = client.post(DISPATCH, json=body, headers=with_key(headers, value)).get_json()
    age_claim(value, 25 * 3600)
    again = client.post(DISPATCH, json=body, headers=with_key(headers, value))
    assert again.status_code == 201 and again.get_json()["id"] != first["id"]
    assert len(recording_publisher) == 2
    age_claim(value, 25 * 3600)
    purge_history(db.session, settings)
    assert db.session.scalar(select(func.count()).where(IdempotencyKey.key == value)) == 0
