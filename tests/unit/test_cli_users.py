"""`flask users list|deactivate|set-password` and `flask tokens list|revoke` as an operator
at a shell sees them: what they print, what they end, what they refuse, what they audit."""

from __future__ import annotations

from typing import Any

from app.db import db
from app.models import ApiToken, AuditLog, User
from app.services.auth import create_token, verify_user
from ops_ui.extensions import sql

PASSWORD = "correct horse battery"


def cli(app: Any, *args: str, stdin: str | None = None) -> Any:
    return app.test_cli_runner().invoke(args=list(args), input=stdin)


def audited(action: str, target_id: str) -> AuditLog:
    row: AuditLog = db.session.query(AuditLog).filter_by(action=action, target_id=target_id).one()
    return row


def one_line_error(result: Any, *words: str) -> None:
    """Exit 3 (cannot run) with one readable line and no traceback."""
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0]


def test_tokens_list_shows_each_token_by_id_and_never_its_secret(app: Any, unique: str) -> None:
    tenant = f"t-{unique}"
    new = create_token(sql(), tenant, "operator", name=f"ci-{unique}")
    db.session.commit()

    result = cli(app, "tokens", "list", "--tenant", tenant)

    assert result.exit_code == 0, result.output
    header, *rows = result.output.strip().splitlines()
    assert header.split() == ["ID", "TENANT", "ROLE", "KIND", "NAME", "PREFIX", "CREATED", "LAST", "USED", "REVOKED"]
    assert len(rows) == 1
    row = rows[0]
    for shown in (new.token.id, tenant, "operator", "api", f"ci-{unique}", f"{new.token.prefix}...", "never"):
        assert shown in row
    assert row.rstrip().endswith("no")  # not revoked
    assert new.raw not in result.output and new.token.token_hash not in result.output


def test_tokens_revoke_by_listed_id_makes_the_api_refuse_the_token(app: Any, client: Any, unique: str) -> None:
    new = create_token(sql(), f"t-{unique}", "viewer", name="to revoke")
    db.session.commit()
    headers = {"Authorization": f"Bearer {new.raw}"}
    assert client.get("/api/jobs", headers=headers).status_code == 200

    result = cli(app, "tokens", "revoke", new.token.id)

    assert result.exit_code == 0, result.output
    assert "Revoked" in result.output and new.raw not in result.output
    assert client.get("/api/jobs", headers=headers).status_code == 401
    stored = db.session.get(ApiToken, new.token.id)
    assert stored is not None and stored.revoked_at is not None
    row = audited("token.revoke", new.token.id)
    assert row.actor == "cli" and row.tenant_id == f"t-{unique}"
    listed = cli(app, "tokens", "list", "--tenant", f"t-{unique}").output
    assert "UTC" in listed.strip().splitlines()[1].rsplit("  ", 1)[-1]  # the revoked column has its date


def test_tokens_revoke_refuses_unknown_and_revoked_ids_in_one_line(app: Any, unique: str) -> None:
    one_line_error(cli(app, "tokens", "revoke", f"no-such-{unique}"), f"no token no-such-{unique}")
    new = create_token(sql(), f"t-{unique}", "viewer")
    db.session.commit()
    assert cli(app, "tokens", "revoke", new.token.id).exit_code == 0
    one_line_error(cli(app, "tokens", "revoke", new.token.id), "already revoked")


def test_users_list_shows_role_tenant_and_state(app: Any, unique: str) -> None:
    tenant = f"t-{unique}"
    assert cli(app, "users", "create", "--email", f"a-{unique}@example.com", "--role", "admin",
               "--tenant", tenant, "--password-stdin", stdin=PASSWORD + "\n").exit_code == 0  # fmt: skip

    result = cli(app, "users", "list", "--tenant", tenant)

    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()
    assert header.startswith("EMAIL") and "LAST LOGIN" in header
    assert row.split()[:4] == [f"a-{unique}@example.com", "admin", tenant, "active"]
    assert "never" in row
    everyone = cli(app, "users", "list").output
    assert f"a-{unique}@example.com" in everyone


def test_deactivate_ends_the_users_console_sessions(app: Any, console: Any) -> None:
    session = console("operator")
    assert session.get("/").status_code == 200

    result = cli(app, "users", "deactivate", "--email", session.email.upper())

    assert result.exit_code == 0, result.output
    assert "deactivated" in result.output
    answer = session.get("/")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    db.session.expire_all()
    assert verify_user(sql(), session.email, PASSWORD) is None
    assert audited("user.deactivate", session.user_id).actor == "cli"
    listed = cli(app, "users", "list", "--tenant", "acme").output
    assert any(line.startswith(session.email) and "deactivated" in line for line in listed.splitlines())
    one_line_error(cli(app, "users", "deactivate", "--email", session.email), "already deactivated")


def test_deactivate_unknown_email_is_one_line_exit_3(app: Any, unique: str) -> None:
    one_line_error(cli(app, "users", "deactivate", "--email", f"nobody-{unique}@example.com"), "no user with e-mail")


def test_set_password_replaces_it_and_ends_sessions(app: Any, console: Any) -> None:
    session = console("admin")
    assert session.get("/").status_code == 200

    result = cli(app, "users", "set-password", "--email", session.email, "--password-stdin", stdin="a new passphrase\n")

    assert result.exit_code == 0, result.output
    assert "a new passphrase" not in result.output
    assert session.get("/").status_code == 302
    db.session.expire_all()
    assert verify_user(sql(), session.email, "a new passphrase") is not None
    assert verify_user(sql(), session.email, PASSWORD) is None
    row = audited("user.password", session.user_id)
    assert row.actor == "cli" and "a new passphrase" not in str(row.after) + str(row.before)


def test_set_password_keeps_the_password_rule_of_users_create(app: Any, console: Any, unique: str) -> None:
    session = console("viewer")
    short = cli(app, "users", "set-password", "--email", session.email, "--password-stdin", stdin="short\n")
    one_line_error(short, "at least 8 characters")
    assert session.get("/").status_code == 200, "a refused change ends no session"
    db.session.expire_all()
    assert verify_user(sql(), session.email, PASSWORD) is not None
    unknown = cli(app, "users", "set-password", "--email", f"x-{unique}@example.com", "--password-stdin", stdin="x" * 9)
    one_line_error(unknown, "no user with e-mail")
    assert db.session.query(User).filter_by(email=f"x-{unique}@example.com").count() == 0
