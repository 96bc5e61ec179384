"""Console login (CSRF, throttling, roles) and the CLI commands of API.md."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.db import db
from app.models import ApiToken, AuditLog, User
from app.services.auth import create_user, hash_token


def csrf_token(client: Any, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, html
    return match.group(1)


@pytest.fixture()
def user(app: Any, unique: str) -> tuple[str, str]:
    email, password = f"op-{unique}@example.com", "correct horse battery"
    create_user(db.session, email, password, "operator", "acme")
    db.session.commit()
    return email, password


def login(client: Any, email: str, password: str) -> Any:
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)})


def test_pages_need_login_but_healthz_and_login_do_not(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_login_without_csrf_token_is_refused(client: Any, user: tuple[str, str]) -> None:
    response = client.post("/login", data={"email": user[0], "password": user[1]})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_login_opens_the_dashboard_and_logout_needs_post(client: Any, user: tuple[str, str]) -> None:
    response = login(client, *user)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and "<h1>Dashboard" in page.get_data(as_text=True)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/logout").status_code == 405
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_audited_and_throttled(client: Any, user: tuple[str, str], redis_client: Any) -> None:
    redis_client.delete("celeriac:login:failures:127.0.0.1")
    for _ in range(10):
        assert login(client, user[0], "wrong password").status_code == 401
    assert login(client, *user).status_code == 429  # even the right password, for a while
    denied = db.session.query(AuditLog).filter_by(action="user.login", outcome="denied").count()
    assert denied >= 10
    redis_client.delete("celeriac:login:failures:127.0.0.1")


def test_job_detail_of_other_tenant_is_404(client: Any, user: tuple[str, str], auth: Any) -> None:
    theirs = client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.echo", "options": {"queue": "nobody"}},
        headers=auth("operator", "globex"),
    ).get_json()["id"]
    mine = client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.echo", "options": {"queue": "nobody"}},
        headers=auth("operator", "acme"),
    ).get_json()["id"]
    login(client, *user)
    assert client.get(f"/jobs/{theirs}").status_code == 404
    detail = client.get(f"/jobs/{mine}")
    assert detail.status_code == 200 and mine in detail.get_data(as_text=True)


def test_cli_tokens_create_prints_token_on_last_line(app: Any) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["tokens", "create", "--tenant", "cli-tenant", "--role", "viewer"])
    assert result.exit_code == 0, result.output
    raw = result.output.strip().splitlines()[-1]
    assert raw.startswith("cel_")
    stored = db.session.query(ApiToken).filter_by(token_hash=hash_token(raw)).one()
    assert stored.tenant_id == "cli-tenant" and stored.role == "viewer"
    assert raw not in str(stored.token_hash)
    bad = runner.invoke(args=["tokens", "create", "--tenant", "Bad Tenant!", "--role", "viewer"])
    assert bad.exit_code == 2 and "tenant must be" in bad.output


def test_cli_users_create_reads_password_from_stdin(app: Any, unique: str) -> None:
    runner = app.test_cli_runner()
    email = f"cli-{unique}@example.com"
    result = runner.invoke(
        args=["users", "create", "--email", email, "--role", "admin", "--tenant", "acme", "--password-stdin"],
        input="s3cret-password\n",
    )
    assert result.exit_code == 0, result.output
    user = db.session.query(User).filter_by(email=email).one()
    assert user.role == "admin" and user.tenant_id == "acme" and user.password_hash != "s3cret-password"
    short = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            f"x{email}",
            "--role",
            "admin",
            "--tenant",
            "acme",
            "--password-stdin",
        ],
        input="short\n",
    )
    assert short.exit_code == 2 and "at least" in short.output


def test_cli_bootstrap_creates_admin_once(app: Any) -> None:
    runner = app.test_cli_runner()
    db.session.query(User).delete()
    db.session.commit()
    first = runner.invoke(args=["celeriac", "bootstrap"])
    assert first.exit_code == 0, first.output
    assert "Admin: admin@localhost" in first.output and "Password: " in first.output
    second = runner.invoke(args=["celeriac", "bootstrap"])
    assert "Password" not in second.output
    admin = db.session.query(User).filter_by(email="admin@localhost").one()
    assert admin.is_superadmin and admin.tenant_id is None


def test_cli_users_create_without_tenant_uses_the_default_tenant(app: Any, unique: str) -> None:
    email = f"nt-{unique}@example.com"
    result = app.test_cli_runner().invoke(
        args=["users", "create", "--email", email, "--role", "viewer", "--password-stdin"], input="long-enough-pw\n"
    )
    assert result.exit_code == 0, result.output
    assert db.session.query(User).filter_by(email=email).one().tenant_id == "default"
