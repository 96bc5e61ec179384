"""Cron schedules; each row is mirrored by a RedBeat entry (S1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import JSONType, Timestamps, UTCDateTime, UUIDPrimaryKey


class JobSchedule(UUIDPrimaryKey, Timestamps, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "job_schedules"

    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    job_definition_id: Mapped[str | None] = mapped_column(
        ForeignKey("job_definitions.id", ondelete="SET NULL"), nullable=True
    )
    job_class: Mapped[str] = mapped_column(String(200), nullable=False)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cron_expression: Mapped[str] = mapped_column(String(200), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    #: "skip" or "run_once": what to do with ticks missed while beat was down.
    missed_fire_policy: Mapped[str] = mapped_column(String(16), nullable=False, default="skip")
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Dispatch options for every fire (queue, priority, timeout, max_attempts, tags),
    #: with the same keys and validation as `POST /api/jobs/dispatch` options.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
