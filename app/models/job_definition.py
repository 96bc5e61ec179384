"""Job definitions: one row per registered task, synced from the code registry.

Rows with `tenant_id` NULL are the defaults every tenant gets; a tenant's admin who edits
a class gets a row of that tenant's own (an override), which wins for that tenant only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import JSONType, Timestamps, UUIDPrimaryKey


class JobDefinition(UUIDPrimaryKey, Timestamps, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "job_definitions"
    __table_args__ = (
        #: One override per tenant and class; job_class first, so dispatch's lookup uses it.
        UniqueConstraint("job_class", "tenant_id", name="uq_job_definitions_class_tenant"),
        #: One global row per class (NULLs are distinct in the constraint above).
        Index(
            "uq_job_definitions_global_class",
            "job_class",
            unique=True,
            sqlite_where=text("tenant_id IS NULL"),
            postgresql_where=text("tenant_id IS NULL"),
        ),
    )

    #: NULL for definitions that come from code and apply to every tenant; else an override.
    tenant_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    #: The Celery task name, e.g. "demo.echo"; what dispatch names.
    job_class: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    default_queue: Mapped[str] = mapped_column(String(100), default="default", nullable=False)
    priority: Mapped[int] = mapped_column(Integer, default=5, nullable=False)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, nullable=False)
    timeout: Mapped[int] = mapped_column(Integer, default=300, nullable=False)
    retry_after: Mapped[int] = mapped_column(Integer, default=60, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    tags: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType, nullable=True)
