"""Batches and chains (J5, J6): one row per group of jobs dispatched together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import JSONType, UTCDateTime, UUIDPrimaryKey, utcnow


class JobBatch(UUIDPrimaryKey, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "job_batches"
    __table_args__ = (Index("ix_batch_tenant_created", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    #: "batch" or "chain".
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="batch")
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    total_jobs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pending_jobs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    processed_jobs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed_jobs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    allow_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    current_step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    then_job: Mapped[Any] = mapped_column(JSONType, nullable=True)
    catch_job: Mapped[Any] = mapped_column(JSONType, nullable=True)
    finally_job: Mapped[Any] = mapped_column(JSONType, nullable=True)
    options: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
