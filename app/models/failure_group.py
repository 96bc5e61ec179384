"""Failure groups (F4): one row per tenant and fingerprint, kept by the recorder.

The root-cause view and "similar failures" read this table, never a scan of
`job_executions`; the recorder updates it in the transaction that marks a job failed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import JSONType, UTCDateTime

#: Most job classes and sample job ids a group remembers.
MAX_GROUP_CLASSES = 20
MAX_GROUP_SAMPLES = 5


class FailureGroup(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "failure_groups"
    __table_args__ = (Index("ix_failure_group_tenant_last_seen", "tenant_id", "last_seen_at", "fingerprint"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    exception_type: Mapped[str] = mapped_column(String(200), nullable=False)
    #: The normalised message (variable parts replaced) and the frames hashed with it.
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    frames: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    #: Job classes seen failing this way, first seen first (at most MAX_GROUP_CLASSES).
    job_classes: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    #: The latest failed job ids, newest first (at most MAX_GROUP_SAMPLES).
    sample_job_ids: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    #: The latest failure's own message, before normalisation.
    last_message: Mapped[str | None] = mapped_column(Text, nullable=True)
