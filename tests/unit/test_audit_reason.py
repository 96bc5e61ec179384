"""The optional reason of an action reaches the audit log, from an API body or a console form."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.db import db
from app.models import AuditLog


def test_api_action_keeps_the_reason_from_its_json_body(client: Any, auth: Any, recording_publisher: Any) -> None:
    headers = auth("admin", "reasons")
    body = {"name": "n", "jobs": [{"job_class": "demo.echo", "payload": {"value": 1}}], "reason": "backfill for #42"}
    answer = client.post("/api/batches", json=body, headers=headers)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    row = db.session.scalar(
        select(AuditLog).where(AuditLog.action == "batch.create", AuditLog.target_id == answer.get_json()["id"])
    )
    assert row is not None and row.reason == "backfill for #42"


def test_api_action_without_reason_is_audited_without_one(client: Any, auth: Any, recording_publisher: Any) -> None:
    answer = client.post(
        "/api/batches",
        json={"jobs": [{"job_class": "demo.echo", "payload": {"value": 1}}]},
        headers=auth("admin", "reasons"),
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    row = db.session.scalar(select(AuditLog).where(AuditLog.target_id == answer.get_json()["id"]))
    assert row is not None and row.reason is None
