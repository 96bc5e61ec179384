"""Console sessions end for good (U1): logout and deactivation end them in every browser."""

from __future__ import annotations

from typing import Any

from app.db import db
from app.models import AuditLog, User
from tests.conftest import ConsoleSession, _forget_cached_csrf, page_csrf_token

PASSWORD = "correct horse battery"


def _copy(session: ConsoleSession, app: Any) -> ConsoleSession:
    """A second browser holding a copy of `session`'s cookie (as a thief would)."""
    cookie = session.client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return ConsoleSession(thief, session.user_id, session.email, session.role, session.tenant)


def _log_in_again(app: Any, session: ConsoleSession) -> ConsoleSession:
    client = app.test_client()
    _forget_cached_csrf()
    token = page_csrf_token(client.get("/login").get_data(as_text=True))
    _forget_cached_csrf()
    answer = client.post("/login", data={"email": session.email, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return ConsoleSession(client, session.user_id, session.email, session.role, session.tenant)


def _sent_to_login(answer: Any) -> bool:
    return answer.status_code == 302 and answer.headers["Location"].startswith("/login")


def test_logout_ends_a_copied_cookie_and_the_users_other_browsers(app: Any, console: Any) -> None:
    laptop = console(role="viewer", tenant="acme")
    phone = _log_in_again(app, laptop)
    thief = _copy(laptop, app)
    assert thief.get("/").status_code == 200  # a copied cookie works while the session lives

    answer = laptop.post("/logout", follow_redirects=True)

    assert answer.status_code == 200 and "every other browser" in answer.get_data(as_text=True)
    assert _sent_to_login(thief.get("/jobs"))
    assert _sent_to_login(phone.get("/"))
    assert _sent_to_login(laptop.get("/"))
    again = _log_in_again(app, laptop)
    assert again.get("/").status_code == 200
    assert _sent_to_login(thief.get("/"))  # the old cookie stays dead after a new login
    logout = db.session.query(AuditLog).filter_by(action="user.logout", actor=f"user:{laptop.user_id}").one()
    assert logout.outcome == "ok"


def test_a_session_cookie_from_before_session_generations_is_sent_to_login(app: Any, console: Any) -> None:
    """Cookies issued before this change name the bare user id: refused, not a crash."""
    user = console(role="viewer", tenant="acme")
    for stale in (user.user_id, f"{user.user_id}:", f"{user.user_id}:x", f"{user.user_id}:\u00b2", ":0"):
        client = app.test_client()
        with client.session_transaction() as cookie_session:
            cookie_session["_user_id"] = stale
            cookie_session["_fresh"] = True
        old = ConsoleSession(client, user.user_id, user.email, user.role, user.tenant)
        assert _sent_to_login(old.get("/")), stale
        assert old.get("/login").status_code == 200
    assert user.get("/").status_code == 200  # the user's current session is untouched


def test_deactivation_ends_sessions_for_good_even_after_reactivation(app: Any, console: Any) -> None:
    admin = console(role="admin", tenant="acme")
    victim = console(role="viewer", tenant="acme")
    copy = _copy(victim, app)
    assert admin.post(f"/users/{victim.user_id}/deactivate").status_code == 302
    assert admin.post(f"/users/{victim.user_id}/reactivate").status_code == 302
    assert _sent_to_login(victim.get("/"))
    assert _sent_to_login(copy.get("/"))
    assert _log_in_again(app, victim).get("/").status_code == 200


def test_a_role_change_keeps_the_users_session(console: Any) -> None:
    admin = console(role="admin", tenant="acme")
    colleague = console(role="viewer", tenant="acme")
    assert admin.post(f"/users/{colleague.user_id}/role", data={"role": "operator"}).status_code == 302
    assert colleague.get("/").status_code == 200
    db.session.expire_all()
    assert db.session.get(User, colleague.user_id).role == "operator"
