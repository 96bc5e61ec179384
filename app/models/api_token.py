"""API tokens: only a SHA-256 of the token is stored; the raw token is shown once.

Two kinds: `api` tokens call the REST API and read `/metrics` for their tenant; `metrics`
tokens read `/metrics` for every tenant and nothing else (a Prometheus scrape credential).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import UTCDateTime, UUIDPrimaryKey, utcnow

#: A token for the REST API (and its own tenant's `/metrics`).
API_TOKEN = "api"
#: A token that scrapes `/metrics` for every tenant and is refused everywhere else.
METRICS_TOKEN = "metrics"
TOKEN_KINDS = (API_TOKEN, METRICS_TOKEN)


class ApiToken(UUIDPrimaryKey, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    #: Hex SHA-256 of the token. Tokens carry 256 random bits, so a fast hash is enough.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    #: First characters of the token, to recognise it in lists without revealing it.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    #: API_TOKEN or METRICS_TOKEN; `tenant_id` of a metrics token only says who it was made for.
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default=API_TOKEN, server_default=API_TOKEN)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
