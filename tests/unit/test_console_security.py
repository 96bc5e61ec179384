"""U1 hardening: security headers, session cookie flags, safe redirects, POST + CSRF.

Session ends: test_console_sessions.py; login throttling: test_login_throttle.py.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from app import redis_keys
from app.db import db
from app.services.auth import create_user
from tests.conftest import _forget_cached_csrf, page_csrf_token

PASSWORD = "correct horse battery"


@pytest.fixture()
def account(app: Any) -> str:
    email = f"sec-{uuid.uuid4().hex[:10]}@example.com"
    create_user(db.session, email, PASSWORD, "viewer", "acme")
    db.session.commit()
    return email


def _login(client: Any, email: str, password: str = PASSWORD, path: str = "/login", **kwargs: Any) -> Any:
    _forget_cached_csrf()  # the test's app context is shared by every client
    token = page_csrf_token(client.get("/login").get_data(as_text=True))
    _forget_cached_csrf()
    return client.post(path, data={"email": email, "password": password, "csrf_token": token}, **kwargs)


def _forget_failures(redis_client: Any, address: str = "127.0.0.1") -> None:
    redis_client.delete(redis_keys.login_failures(address))


def test_every_console_page_carries_the_security_headers(console: Any, client: Any) -> None:
    admin = console(role="admin", tenant="acme")
    answers = [client.get("/login"), admin.get("/"), admin.get("/tokens"), admin.get("/audit"), admin.get("/no-such")]
    for answer in answers:
        headers = answer.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"], answer.request.path
        assert (
            "script-src" not in headers["Content-Security-Policy"]
            or "unsafe-inline" not in headers["Content-Security-Policy"]
        )
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_no_page_of_mine_has_inline_scripts_or_styles(console: Any) -> None:
    """The CSP would block them: everything must come from static files and CSS classes."""
    admin = console(role="admin", tenant="acme")
    for path in ("/", "/?window=day", "/performance", "/audit", "/tokens", "/users"):
        html = admin.get(path).get_data(as_text=True)
        assert "<script>" not in html and " style=" not in html and "onclick" not in html, path


def test_session_cookie_is_http_only_same_site_and_secure_when_configured(app: Any, account: str) -> None:
    cookie = _login(app.test_client(), account).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    from ops_ui import create_app

    settings = dataclasses.replace(app.extensions["celeriac_settings"], secure_cookies=True)
    secure_app = create_app({"TESTING": True}, settings=settings)
    with secure_app.app_context():
        secure = _login(secure_app.test_client(), account).headers["Set-Cookie"]
    assert "Secure" in secure and "HttpOnly" in secure


def test_a_successful_login_clears_the_accounts_failures(app: Any, account: str, redis_client: Any) -> None:
    """Nine typos, then the right password: the count starts again, so nine more typos do not lock."""
    client = app.test_client()
    _forget_failures(redis_client)
    try:
        for _ in range(9):
            assert _login(client, account, "wrong").status_code == 401
        assert _login(client, account).status_code == 302
        client = app.test_client()
        for _ in range(9):
            assert _login(client, account, "wrong").status_code == 401
        assert _login(client, account).status_code == 302
        # A user's own typos are also taken off the shared address count once they get in.
        assert redis_client.get(redis_keys.login_failures("127.0.0.1")) is None
    finally:
        _forget_failures(redis_client)


@pytest.mark.parametrize(
    "target", ["//evil.example/", "/\\evil.example/", "/\t/evil.example/", "https://evil.example/"]
)
def test_login_never_redirects_to_another_site(app: Any, account: str, target: str) -> None:
    answer = _login(app.test_client(), account, path="/login?next=" + target)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"


def test_login_returns_to_the_page_asked_for(app: Any, account: str) -> None:
    answer = _login(app.test_client(), account, path="/login?next=/performance?window=day")
    assert answer.headers["Location"] == "/performance?window=day"


def test_logout_is_post_with_csrf_only(console: Any) -> None:
    session = console(role="viewer", tenant="acme")
    assert session.client.get("/logout").status_code == 405
    assert session.post("/logout", csrf=False).status_code == 400
    assert session.get("/").status_code == 200  # still logged in
    page = session.get("/").get_data(as_text=True)
    assert 'action="/logout"' in page and ">Log out</button>" in page
    assert session.post("/logout").status_code == 302
    assert session.get("/").status_code == 302


@pytest.mark.parametrize(
    "path",
    [
        "/tokens",
        "/users",
        "/tokens/00000000-0000-0000-0000-000000000000/revoke",
        "/users/x/role",
        "/users/x/deactivate",
    ],
)
def test_admin_actions_refuse_get_and_missing_csrf(console: Any, path: str) -> None:
    admin = console(role="admin", tenant="acme")
    assert admin.post(path, data={"name": "x", "role": "viewer"}, csrf=False).status_code == 400
    if path.count("/") > 1:
        assert admin.get(path).status_code == 405
