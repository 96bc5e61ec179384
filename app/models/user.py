"""Console users (hashed passwords, a role, one tenant or all for a superadmin)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import Timestamps, UTCDateTime, UUIDPrimaryKey


class User(UUIDPrimaryKey, Timestamps, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    #: NULL only for superadmins, who see every tenant.
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    is_superadmin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Part of every session's identity: logout bumps it, which ends the user's sessions
    #: everywhere (a copied cookie included).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
