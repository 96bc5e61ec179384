"""Tenant: the unit of isolation. Its id is a short slug such as "acme"."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import UTCDateTime, utcnow


class Tenant(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "tenants"

    #: The slug doubles as the id so code can dispatch `for_tenant("acme")` with no lookup.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
