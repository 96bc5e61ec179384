"""Tenants, console users and API tokens (U1). Tokens are stored as SHA-256 only."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import NotFound, ValidationError
from app.models import ApiToken, Tenant, User
from app.models.api_token import API_TOKEN, METRICS_TOKEN, TOKEN_KINDS

ROLES = ("viewer", "operator", "admin")
#: What each role may do, cumulative: viewer < operator < admin.
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
#: Tokens start with this, so leaked ones are easy to grep for.
TOKEN_PREFIX = "cel_"
#: `last_used_at` is written at most this often per token (not on every request).
LAST_USED_RESOLUTION = timedelta(minutes=1)
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MIN_PASSWORD_LENGTH = 8


def normalise_email(email: str) -> str:
    """The form of an e-mail that accounts are stored and throttled under."""
    return email.strip().lower()


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
    session: Session,
    tenant_id: str,
    role: str,
    name: str = "",
    created_by: str | None = None,
    kind: str = API_TOKEN,
) -> NewToken:
    """Create a token; the raw value is returned once and never stored.

    A METRICS_TOKEN reads `/metrics` for every tenant and nothing else; it takes the viewer
    role, so no listing ever suggests it can do more.

    Raises:
        ValidationError: unknown role or kind, bad tenant id, a metrics token above viewer.
    """
    _check_role(role)
    if kind not in TOKEN_KINDS:
        raise ValidationError(f"kind must be one of {', '.join(TOKEN_KINDS)}, got {kind!r}")
    if kind == METRICS_TOKEN and role != "viewer":
        raise ValidationError(f"a metrics token only reads /metrics: give it the viewer role, not {role}")
    ensure_tenant(session, tenant_id)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        token_hash=hash_token(raw),
        prefix=raw[:10],
        tenant_id=tenant_id,
        role=role,
        kind=kind,
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


def check_password(password: str) -> None:
    """The rule every new password meets (created, or set again from the CLI).

    Raises:
        ValidationError: the password is too short.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


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
    email = normalise_email(email)
    if "@" not in email or len(email) > 320:
        raise ValidationError(f"{email!r} is not an e-mail address")
    check_password(password)
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


@functools.cache
def _decoy_hash() -> str:
    """A hash of nothing anyone knows, made once: checked when there is no account to check."""
    return generate_password_hash(secrets.token_urlsafe(16))


def verify_user(session: Session, email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None.

    Unknown and deactivated e-mails cost one password check, like a wrong password for a real
    account, so neither the answer nor its timing reveals which e-mails exist.
    """
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None or not user.is_active:
        check_password_hash(_decoy_hash(), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def end_sessions(session: Session, user: User) -> None:
    """End every console session of `user`, in every browser (logout, deactivation).

    A session names the user's session generation; moving it on makes every cookie issued
    before refer to a generation that no longer exists. Done in SQL (`+ 1`), so two logouts
    at once both count.
    """
    user.session_generation = User.session_generation + 1
    session.flush()


def has_users(session: Session) -> bool:
    return session.scalar(select(User.id).limit(1)) is not None


# --- Token and user management (console pages "API tokens" and "Users") ---


def roles_up_to(role: str) -> list[str]:
    """The roles someone with `role` may hand out: theirs and below, never above."""
    return [r for r in ROLES if role_allows(role, r)]


def list_tokens(session: Session, tenant_id: str | None) -> list[ApiToken]:
    """The tenant's tokens (None: every tenant's), live ones first, newest first."""
    query = select(ApiToken)
    if tenant_id is not None:
        query = query.where(ApiToken.tenant_id == tenant_id)
    query = query.order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id)
    return list(session.scalars(query))


def get_token(session: Session, token_id: str, tenant_id: str | None) -> ApiToken:
    """Raises: NotFound for an unknown id or another tenant's token."""
    token = session.get(ApiToken, token_id)
    if token is None or (tenant_id is not None and token.tenant_id != tenant_id):
        raise NotFound(f"no token {token_id}")
    return token


def revoke_token(session: Session, token: ApiToken) -> None:
    """Revoke at once: the next request with it gets 401.

    Raises:
        ValidationError: it is already revoked.
    """
    if token.revoked_at is not None:
        raise ValidationError("this token is already revoked")
    token.revoked_at = datetime.now(UTC)
    session.flush()


def list_users(session: Session, tenant_id: str | None) -> list[User]:
    """The tenant's users (None: everyone, superadmins included), by e-mail."""
    query = select(User)
    if tenant_id is not None:
        query = query.where(User.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(User.email)))


def get_user(session: Session, user_id: str, tenant_id: str | None) -> User:
    """Raises: NotFound for an unknown id or a user outside `tenant_id` (superadmins included)."""
    user = session.get(User, user_id)
    if user is None or (tenant_id is not None and user.tenant_id != tenant_id):
        raise NotFound(f"no user {user_id}")
    return user


def check_new_user(actor: User, role: str, tenant_id: str | None, superadmin: bool) -> None:
    """Whether `actor` may create a user with these settings.

    Raises:
        ValidationError: a role above the actor's, a superadmin made by a non-superadmin,
            or a user of another tenant made by a tenant admin.
    """
    _check_role(role)
    if superadmin and not actor.is_superadmin:
        raise ValidationError("only a superadmin can create superadmins")
    if not actor.is_superadmin and tenant_id != actor.tenant_id:
        raise ValidationError("you can only create users of your own tenant")
    if not role_allows(actor.role, role) and not actor.is_superadmin:
        raise ValidationError(f"you can give at most your own role ({actor.role})")


def change_role(session: Session, actor: User, target: User, role: str) -> None:
    """Raises: ValidationError for an unknown role, a role above the actor's, or demoting oneself."""
    _check_role(role)
    if target.id == actor.id and role != actor.role:
        raise ValidationError("you cannot change your own role; ask another admin")
    if not actor.is_superadmin and not role_allows(actor.role, role):
        raise ValidationError(f"you can give at most your own role ({actor.role})")
    target.role = role
    session.flush()


def set_active(session: Session, actor: User, target: User, active: bool) -> None:
    """Deactivate (they cannot log in; their sessions end for good) or reactivate.

    Deactivating ends the user's sessions (`end_sessions`), so reactivating later does not
    bring an old cookie back to life.

    Raises:
        ValidationError: deactivating oneself, or no change.
    """
    if target.id == actor.id and not active:
        raise ValidationError("you cannot deactivate yourself; ask another admin")
    if target.is_active == active:
        raise ValidationError(f"{target.email} is already {'active' if active else 'deactivated'}")
    target.is_active = active
    if not active:
        end_sessions(session, target)
    session.flush()
