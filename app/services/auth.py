"""Tenants, console users and API tokens (U1). Tokens are stored as SHA-256 only."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import ValidationError
from app.models import ApiToken, Tenant, User

ROLES = ("viewer", "operator", "admin")
#: What each role may do, cumulative: viewer < operator < admin.
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
#: Tokens start with this, so leaked ones are easy to grep for.
TOKEN_PREFIX = "cel_"
#: `last_used_at` is written at most this often per token (not on every request).
LAST_USED_RESOLUTION = timedelta(minutes=1)
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MIN_PASSWORD_LENGTH = 8


def role_allows(role: str, needed: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


def _check_role(role: str) -> None:
    if role not in ROLE_RANK:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, got {role!r}")


def ensure_tenant(session: Session, tenant_id: str) -> Tenant:
    """The tenant `tenant_id`, created if needed.

    Raises:
        ValidationError: the id is not a lowercase slug.
    """
    if not _TENANT_RE.match(tenant_id):
        raise ValidationError(
            "tenant must be 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        )
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        tenant = Tenant(id=tenant_id, name=tenant_id)
        session.add(tenant)
        session.flush()
    return tenant


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    raw: str


def create_token(
    session: Session, tenant_id: str, role: str, name: str = "", created_by: str | None = None
) -> NewToken:
    """Create a token; the raw value is returned once and never stored.

    Raises:
        ValidationError: unknown role or bad tenant id.
    """
    _check_role(role)
    ensure_tenant(session, tenant_id)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        token_hash=hash_token(raw),
        prefix=raw[:10],
        tenant_id=tenant_id,
        role=role,
        created_by=created_by,
    )
    session.add(token)
    session.flush()
    return NewToken(token, raw)


def authenticate_token(session: Session, raw: str) -> ApiToken | None:
    """The live token for `raw`, or None; notes when it was last used."""
    token: ApiToken | None = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    if token is None or token.revoked_at is not None:
        return None
    now = datetime.now(UTC)
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
        session.commit()
    return token


def create_user(
    session: Session,
    email: str,
    password: str,
    role: str,
    tenant_id: str | None,
    superadmin: bool = False,
) -> User:
    """Create a console user. A user without a tenant must be a superadmin.

    Raises:
        ValidationError: bad e-mail, short password, unknown role, duplicate e-mail.
    """
    _check_role(role)
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ValidationError(f"{email!r} is not an e-mail address")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if tenant_id is None and not superadmin:
        raise ValidationError("a user needs a tenant unless they are a superadmin")
    if session.scalar(select(User).where(User.email == email)) is not None:
        raise ValidationError(f"a user with e-mail {email} already exists")
    if tenant_id is not None:
        ensure_tenant(session, tenant_id)
    user = User(
        email=email,
        password_hash=generate_password_hash(password),
        role=role,
        tenant_id=tenant_id,
        is_superadmin=superadmin,
    )
    session.add(user)
    session.flush()
    return user


def verify_user(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.is_active:
        # Same work either way, so timing does not reveal which e-mails exist.
        check_password_hash(generate_password_hash("x"), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def has_users(session: Session) -> bool:
    return session.scalar(select(User.id).limit(1)) is not None
