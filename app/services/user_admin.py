"""Account changes made from a shell (`flask users deactivate|set-password`), with no console
user acting: whoever has the shell has the database anyway.

Both end the user's console sessions (`end_sessions`), so a changed password or a
deactivation takes effect in every open browser at once, not at the next login.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app.errors import NotFound, ValidationError
from app.models import User
from app.services.auth import check_password, end_sessions, normalise_email


def user_by_email(session: Session, email: str) -> User:
    """Raises: NotFound when no account has this e-mail (in any letter case)."""
    user: User | None = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(f"no user with e-mail {normalise_email(email)}")
    return user


def deactivate(session: Session, user: User) -> None:
    """The user can no longer log in, and their open sessions end.

    Raises:
        ValidationError: the user is deactivated already.
    """
    if not user.is_active:
        raise ValidationError(f"{user.email} is already deactivated")
    user.is_active = False
    end_sessions(session, user)


def set_password(session: Session, user: User, password: str) -> None:
    """Replace the user's password; every session opened with the old one ends.

    Raises:
        ValidationError: the password breaks the rule of `check_password`.
    """
    check_password(password)
    user.password_hash = generate_password_hash(password)
    end_sessions(session, user)


def first_admin_email(session: Session) -> str | None:
    """Whom `make run`'s banner names as the admin: the first active superadmin (else the
    first active admin), or None when there is neither."""
    for query in (select(User.email).where(User.is_superadmin), select(User.email).where(User.role == "admin")):
        email: str | None = session.scalar(query.where(User.is_active).order_by(User.created_at, User.id).limit(1))
        if email is not None:
            return email
    return None
