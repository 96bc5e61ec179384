"""What a schedule's history needs besides its runs: missed and refused fires (S4)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import Timestamps, UTCDateTime, UUIDPrimaryKey

#: Ticks that passed while nothing fired them (beat down, Redis or SQL unreachable).
MISSED = "missed"
#: A due tick whose job could not be dispatched (unknown or inactive job class).
REFUSED = "refused"


class ScheduleEvent(UUIDPrimaryKey, Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """One detection: a run of consecutive missed ticks, or one refused dispatch.

    Runs themselves are `job_executions` rows whose `schedule_id` names the schedule.
    """

    __tablename__ = "schedule_events"

    schedule_id: Mapped[str] = mapped_column(
        ForeignKey("job_schedules.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    #: First and last tick concerned, and how many ticks (1 for a refused dispatch).
    tick_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_tick_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    #: For missed ticks: "skipped", or "ran_once" when the policy ran one catch-up job.
    action: Mapped[str | None] = mapped_column(String(16), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
