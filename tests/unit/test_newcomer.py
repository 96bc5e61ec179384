"""What a new user meets first (issue 14, item 7): the README tour says when to restart; a
misspelt task module, a missing or empty database are one readable line each; `make run`
ends with one banner holding what the user needs."""

from __future__ import annotations

import dataclasses
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import redis_keys
from app.config import get_settings
from app.db import db
from app.models import User
from ops_ui import create_app
from scripts.run import Admin, Plan, Signals, print_banner, read_bootstrap, wait_for_the_rest
from tests.conftest import ROOT

BAD_MODULES = "tests.sample_jobs,tasks.demoo"


def run(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A command as a user types it in the checkout, stdout and stderr together."""
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        env={**os.environ, "FLASK_APP": "ops_ui", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=90,
        check=False,
    )


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


# --- The README tour ---


def test_the_tour_says_to_restart_make_run_after_adding_a_task_module() -> None:
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    step2 = tour.split("\n2. ", 1)[1].split("\n3. ", 1)[0]
    assert "CELERIAC_TASK_MODULES" in step2
    restart = step2[step2.index("CELERIAC_TASK_MODULES") :]
    assert "restart" in restart and "Ctrl-C" in restart and "make run" in restart


# --- A misspelt CELERIAC_TASK_MODULES ---


def test_a_misspelt_task_module_stops_a_flask_command_with_one_line_naming_it() -> None:
    result = run("flask", "users", "list", CELERIAC_TASK_MODULES=BAD_MODULES)
    line = one_line(result.stdout)
    assert result.returncode == 3
    assert line.startswith("Error: CELERIAC_TASK_MODULES names 'tasks.demoo'") and "did you mean 'tasks.demo'?" in line


def test_a_misspelt_task_module_stops_the_worker_with_one_line_naming_it(unique: str) -> None:
    result = run(
        "celery", "-A", "app.celery_app", "worker", "-Q", f"nothing-{unique}", "-c", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        CELERIAC_TASK_MODULES=BAD_MODULES,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no module 'tasks.demoo'" in one_line(result.stdout)


def test_the_message_names_a_missing_package_too() -> None:
    from app.task_modules import missing_module_message

    assert missing_module_message(["tests.sample_jobs", "tasks.demo"]) is None
    message = missing_module_message(["myproject.jobs"])
    assert message is not None and "'myproject.jobs'" in message and "did you mean" not in message


# --- A database that is missing, empty or unreachable ---


@pytest.fixture()
def app_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An app whose DATABASE_URL is `url`; `unset=True`: as if DATABASE_URL were not set."""
    made: list[Any] = []

    def make(url: str, unset: bool = False) -> Any:
        if unset:
            monkeypatch.setattr("ops_ui.cli_checks.read_environment", lambda: {})
        made.append(create_app({"TESTING": True}, settings=dataclasses.replace(get_settings(), database_url=url)))
        return made[-1]

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()


def invoke(app: Any, *args: str) -> Any:
    with app.app_context():  # as `flask` runs a command
        return app.test_cli_runner().invoke(args=list(args))


def test_a_missing_default_database_is_named_and_not_created(app_on: Any, tmp_path: Path) -> None:
    path = tmp_path / "var" / "celeriac.db"
    result = invoke(app_on(f"sqlite:///{path}", unset=True), "tokens", "list")
    assert result.exit_code == 3
    line = one_line(result.output)
    assert f"sqlite:///{path} (the default: DATABASE_URL is not set)" in line and "flask db upgrade" in line
    assert not path.exists() and not path.parent.exists()


def test_a_database_without_tables_says_to_run_flask_db_upgrade(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result = run("flask", "users", "list", DATABASE_URL=f"sqlite:///{empty}")
    line = one_line(result.stdout)
    assert result.returncode == 3 and "no such table" not in line
    assert line == (
        f"Error: the database sqlite:///{empty} has no tables yet: run `.venv/bin/flask db upgrade` "
        "(make run does), or set DATABASE_URL to the database your stack uses"
    )
    assert run("flask", "users", "set-password", "--help", DATABASE_URL=f"sqlite:///{empty}").returncode == 0


def test_an_unreachable_database_is_named_with_its_password_masked(app_on: Any) -> None:
    url = "postgresql+psycopg://celeriac:s3cret-pw@127.0.0.1:1/celeriac"
    result = invoke(app_on(url), "users", "list")
    assert result.exit_code == 3
    line = one_line(result.output)
    assert "cannot reach the database postgresql+psycopg://celeriac:***@127.0.0.1:1/celeriac" in line
    assert "s3cret-pw" not in result.output


# --- make run's banner ---


def test_the_admin_bootstrap_prints_is_held_back_for_the_banner() -> None:
    admin, rest = read_bootstrap("Job definitions added: 2\nAdmin: admin@localhost\nPassword: Zx9-secret\n")
    assert admin == Admin("admin@localhost", "Zx9-secret") and rest == ["Job definitions added: 2"]
    assert read_bootstrap("Admin: admin@localhost\n")[0] == Admin("admin@localhost", None)
    assert read_bootstrap("") == (None, [])


def test_bootstrap_names_the_admin_on_later_runs_without_a_password(app: Any, unique: str) -> None:
    from app.services.auth import create_user
    from ops_ui.extensions import sql

    create_user(sql(), f"root-{unique}@example.com", "long enough pw", "admin", None, superadmin=True)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["celeriac", "bootstrap"])
    admin, _ = read_bootstrap(result.output)
    assert result.exit_code == 0 and admin is not None and admin.password is None
    named = db.session.query(User).filter_by(email=admin.email).one()
    assert named.is_superadmin and named.is_active


def banner(admin: Admin | None, capsys: pytest.CaptureFixture[str]) -> list[str]:
    plan = Plan(get_settings(), {"FLOWER_BASIC_AUTH": "admin:flower-secret"}, admin=admin)
    print_banner(plan, "external at redis://127.0.0.1:6379/0")
    return capsys.readouterr().out.strip().splitlines()


def test_the_banner_holds_console_admin_password_and_flower(capsys: pytest.CaptureFixture[str]) -> None:
    settings = get_settings()
    lines = banner(Admin("admin@localhost", "Zx9-secret"), capsys)
    text = "\n".join(lines)
    assert lines[0] == lines[-1] and set(lines[0]) == {"="}, "one banner, ruled above and below"
    order = [f"http://127.0.0.1:{settings.port}", "admin admin@localhost, password Zx9-secret",
             f"http://127.0.0.1:{settings.flower_port}"]  # fmt: skip
    assert [text.index(part) for part in order] == sorted(text.index(part) for part in order)
    assert "flower-secret" not in text
    later = "\n".join(banner(Admin("admin@localhost"), capsys))
    assert "admin admin@localhost" in later and "password Zx9" not in later and "set-password" in later


class Flower(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(401)  # Flower asks for its password
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Runner:
    """Stands for the process runner, running."""

    def poll(self) -> None:
        return None


@pytest.fixture()
def own_redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own: the session's workers beat into the shared test database."""
    from app.embedded_redis import start_embedded

    server = start_embedded(tmp_path / "redis", persist=False)
    try:
        yield server.url
    finally:
        server.stop()


def test_the_banner_waits_for_a_ready_worker_and_flower(own_redis_url: str, unique: str) -> None:
    import redis

    server = http.server.HTTPServer(("127.0.0.1", 0), Flower)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    plan = Plan(dataclasses.replace(get_settings(), flower_port=server.server_address[1]), {})
    url, since, host = own_redis_url, time.time(), f"banner-{unique}@host"
    redis_client = redis.Redis.from_url(url)
    try:
        # Flower answers, but no worker has beaten since the start: not yet.
        assert not wait_for_the_rest(plan, url, since, Runner(), Signals(), timeout_s=0.5)  # type: ignore[arg-type]
        redis_client.zadd(redis_keys.WORKERS, {host: time.time()})
        started = time.monotonic()
        assert wait_for_the_rest(plan, url, since, Runner(), Signals(), timeout_s=10, after_flower_s=2)  # type: ignore[arg-type]
        assert time.monotonic() - started >= 1.5, "then the lines Flower makes the worker log"
        server.shutdown()
        assert not wait_for_the_rest(plan, url, since, Runner(), Signals(), timeout_s=0.5)  # type: ignore[arg-type]
    finally:
        redis_client.zrem(redis_keys.WORKERS, host)
        server.server_close()
