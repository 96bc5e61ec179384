"""Idempotency keys of API requests (R2): a repeat within 24 h gets the first answer.

One row per (tenant, endpoint, key). A request claims the key (status `in_progress`, with
the ids it will create decided up front), then stores its answer (`done`). A repeat with
the same body hash replays the answer; another body is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import JSONType, UTCDateTime, utcnow


class IdempotencyKey(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "endpoint", "key", name="uq_idempotency_tenant_endpoint_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    #: The route, e.g. "POST /api/jobs/dispatch".
    endpoint: Mapped[str] = mapped_column(String(100), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    #: SHA-256 of the body as canonical JSON (sorted keys, no spaces).
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    #: "in_progress" while the first request is handled, then "done".
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="in_progress")
    #: Ids the first request creates (job, batch or chain ids), decided when it claimed the key.
    resource_ids: Mapped[Any] = mapped_column(JSONType, nullable=True)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
