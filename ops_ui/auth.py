"""Who is calling: bearer tokens for /api, sessions for the console; one role guard each."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import g, redirect, request, url_for
from flask_login import current_user

from app.errors import Forbidden
from app.models import User
from app.models.api_token import METRICS_TOKEN
from app.services.auth import authenticate_token, role_allows
from ops_ui.errors import problem
from ops_ui.extensions import login_manager, sql

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    """The caller of a request: an API token or a console user."""

    actor: str
    role: str
    #: None for a superadmin, who sees every tenant.
    tenant_id: str | None


def api_auth(role: str, metrics_token: bool = False) -> Callable[[F], F]:
    """Require a bearer token whose role is at least `role`; sets `g.principal`.

    A metrics token (app.models.api_token.METRICS_TOKEN) is refused with 403 unless the view
    says `metrics_token=True` (`/metrics` alone): there it acts for every tenant.
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, raw = header.partition(" ")
            if scheme.lower() != "bearer" or not raw.strip():
                return problem(401, "Unauthorized", "send Authorization: Bearer <token>")
            token = authenticate_token(sql(), raw.strip())
            if token is None:
                return problem(401, "Unauthorized", "the token is unknown or revoked")
            scrapes_every_tenant = token.kind == METRICS_TOKEN
            # A metrics token's tenant widens to every tenant only where it is accepted.
            tenant_id = None if scrapes_every_tenant and metrics_token else token.tenant_id
            g.principal = Principal(f"token:{token.id}", token.role, tenant_id)
            if scrapes_every_tenant and not metrics_token:
                raise Forbidden("a metrics token reads /metrics and nothing else; use an API token")
            if not role_allows(token.role, role):
                raise Forbidden(f"this needs the {role} role; the token has {token.role}")
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]  # read by /api/openapi.json
        wrapper.accepts_metrics_token = metrics_token  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def console_role(role: str) -> Callable[[F], F]:
    """Require a logged-in console user whose role is at least `role`."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return redirect(url_for("console.login", next=request.full_path))
            user: User = current_user.user
            g.principal = Principal(f"user:{user.id}", user.role, None if user.is_superadmin else user.tenant_id)
            if not role_allows(user.role, role):
                raise Forbidden(f"this needs the {role} role")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def session_id(user: User) -> str:
    """What a console session names: the user and their session generation, "<id>:<generation>".

    Logout and deactivation move the generation on (app.services.auth.end_sessions), which
    ends every session named with the old one, in every browser, copied cookies included.
    """
    return f"{user.id}:{user.session_generation}"


class LoginUser:
    """Flask-Login's view of a `User`."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.is_authenticated = True
        self.is_active = user.is_active
        self.is_anonymous = False

    def get_id(self) -> str:
        return session_id(self.user)


@login_manager.user_loader  # type: ignore[untyped-decorator]
def _load_user(session_user_id: str) -> LoginUser | None:
    """The session's user, or None (anonymous: sent to login) when the session has ended.

    A cookie from before session generations holds a bare user id: it is refused too.
    """
    user_id, _, generation = session_user_id.rpartition(":")
    if not user_id or not generation.isascii() or not generation.isdigit():
        return None
    user = sql().get(User, user_id)
    if user is None or not user.is_active or user.session_generation != int(generation):
        return None
    return LoginUser(user)
