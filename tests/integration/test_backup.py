"""Backup and restore (issue 13, item 5): `flask celeriac export` / `import` on real databases.

Round trip SQLite -> PostgreSQL -> SQLite, each database made for the test (the schema from
the models) and compared row by row; duplicates skipped, bad files refused whole; and
`--requeue-pending` against the real Redis broker.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from app.db import db, get_engine, session_scope
from app.errors import ValidationError
from app.models import JobBatch, JobDefinition, JobExecution, JobSchedule, QueueSettings
from app.models.job_execution import JobAttempt
from app.services.backup_export import export
from app.services.backup_format import ATTEMPTS, TABLES, row_out
from app.services.backup_import import check_file, import_file
from tests.integration.conftest import wait_events_recorded

ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture()
def make_db(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """make_db("sqlite" | "postgresql") -> the URL of a new, empty database with the schema."""
    made: list[str] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / f'backup-{uuid.uuid4().hex[:6]}.db'}"
        else:
            import psycopg

            name = f"celeriac_backup_{uuid.uuid4().hex[:10]}"
            try:
                with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.Error as exc:
                if os.environ.get("CI"):
                    pytest.fail(f"PostgreSQL unreachable at {ADMIN_URL}: {exc}")
                pytest.skip(f"PostgreSQL unreachable at {ADMIN_URL}")
            made.append(name)
            url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        db.metadata.create_all(get_engine(url))
        return url

    yield make
    if made:
        import psycopg

        for name in made:
            get_engine(ADMIN_URL.rsplit("/", 1)[0] + f"/{name}").dispose()
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str) -> dict[str, str]:
    """A bit of everything, with what tends to break a round trip: times with offsets,
    nested JSON, unicode, a sealed payload, attempts, a definition and a schedule linked."""
    ids = {key: str(uuid.uuid4()) for key in ("definition", "override", "schedule", "batch", "done", "sealed", "old")}
    with session_scope(url) as session:
        session.add_all(
            [
                JobDefinition(id=ids["definition"], tenant_id=None, name="Echo", job_class="demo.echo", tags=["a"]),
                JobDefinition(id=ids["override"], tenant_id="acme", name="Echo", job_class="demo.echo", priority=9),
                QueueSettings(name="emails", max_attempts=5, retry_after=300, weight=10, max_pending=1000),
            ]
        )
        session.flush()
        session.add_all(
            [
                JobSchedule(
                    id=ids["schedule"], tenant_id="acme", job_definition_id=ids["definition"], job_class="demo.echo",
                    cron_expression="0 */6 * * *", timezone="Europe/Berlin", payload={"v": [1, {"x": "ü"}]},
                    options={"queue": "emails", "priority": 8, "tags": ["nightly"]}, next_run_at=T0,
                ),
                JobBatch(id=ids["batch"], tenant_id="acme", name="Import ☃", total_jobs=2, options={"k": 1},
                         created_at=T0),
                JobExecution(
                    id=ids["done"], tenant_id="acme", job_class="demo.echo", queue="emails", priority=7,
                    payload={"text": "héllo", "n": 1.5}, status="completed", attempts=2, max_attempts=3,
                    batch_id=ids["batch"], job_definition_id=ids["definition"], tags=["t"],
                    created_at=T0, started_at=T0 + timedelta(seconds=1), completed_at=T0 + timedelta(seconds=2),
                    result={"ok": True}, message={"h": {"tenant": "acme"}, "r": 0},
                ),
                JobExecution(
                    id=ids["sealed"], tenant_id="acme", job_class="demo.secret", payload={"__sealed__": "gAAAAB-token"},
                    encrypted=True, status="pending", created_at=T0 + timedelta(minutes=1),
                ),
                JobExecution(id=ids["old"], tenant_id="other", job_class="demo.echo", status="failed",
                             error_message="boom", created_at=T0 - timedelta(days=30)),
            ]
        )  # fmt: skip
        session.flush()
        for number in (1, 2):
            session.add(
                JobAttempt(
                    execution_id=ids["done"], attempt_key=f"{ids['done']}:{number}", number=number,
                    status="failed" if number == 1 else "completed", worker_id="w1",
                    started_at=T0 + timedelta(seconds=number), runtime_ms=10 * number,
                )
            )  # fmt: skip
    return ids


def snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every exported table, as the file would hold it (attempt ids aside)."""
    found: dict[str, list[dict[str, Any]]] = {}
    with session_scope(url) as session:
        for kind, table in [*TABLES.items(), ("attempt", ATTEMPTS)]:
            rows = [row_out(table, row) for row in session.execute(select(table))]
            for row in rows:
                if kind == "attempt":
                    row.pop("id", None)
                for name in ("created_at", "updated_at"):  # both databases answer times as UTC
                    if isinstance(row.get(name), str):
                        row[name] = datetime.fromisoformat(row[name]).astimezone(UTC).isoformat()
            found[kind] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return found


def dump(url: str, **filters: Any) -> str:
    out = io.StringIO()
    with session_scope(url) as session:
        export(session, out, **filters)
    return out.getvalue()


def load(url: str, text: str) -> Any:
    check_file(io.StringIO(text))
    with session_scope(url) as session:
        return import_file(session, io.StringIO(text))


def test_round_trip_sqlite_to_postgresql_and_back_keeps_every_row(make_db: Callable[[str], str]) -> None:
    source = make_db("sqlite")
    ids = seed(source)
    text = dump(source)
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["kind"] == "header" and lines[0]["version"] == 1 and lines[-1]["kind"] == "end"
    sealed = next(line for line in lines if line.get("row", {}).get("id") == ids["sealed"])
    assert sealed["row"]["payload"] == {"__sealed__": "gAAAAB-token"}  # exported as stored, never opened
    done = next(line for line in lines if line.get("row", {}).get("id") == ids["done"])
    assert [a["number"] for a in done["attempts"]] == [1, 2]

    postgres = make_db("postgresql")
    report = load(postgres, text)
    assert report.imported["execution"] == 3 and report.imported["definition"] == 2 and report.imported["queue"] == 1
    assert snapshot(postgres) == snapshot(source)

    back = make_db("sqlite")
    load(back, dump(postgres))
    assert snapshot(back) == snapshot(source)


def test_importing_again_skips_every_id_and_overwrites_nothing(make_db: Callable[[str], str]) -> None:
    source = make_db("sqlite")
    ids = seed(source)
    text = dump(source)
    target = make_db("postgresql")
    load(target, text)
    with session_scope(target) as session:
        session.get(JobExecution, ids["done"]).status = "failed"  # type: ignore[union-attr]
    again = load(target, text)
    assert sum(again.imported.values()) == 0
    assert again.skipped["execution"] == 3 and again.skipped["schedule"] == 1 and again.skipped["queue"] == 1
    with session_scope(target) as session:
        assert session.get(JobExecution, ids["done"]).status == "failed"  # type: ignore[union-attr]
        assert len(list(session.scalars(select(JobAttempt)))) == 2


def test_since_and_tenant_narrow_the_history(make_db: Callable[[str], str]) -> None:
    source = make_db("sqlite")
    ids = seed(source)
    rows = [json.loads(line) for line in dump(source, since=T0 - timedelta(days=1), tenant="acme").splitlines()]
    executions = {r["row"]["id"] for r in rows if r["kind"] == "execution"}
    assert executions == {ids["done"], ids["sealed"]}
    definitions = {r["row"]["id"] for r in rows if r["kind"] == "definition"}
    assert definitions == {ids["definition"], ids["override"]}  # the tenant's own and the global one
    assert [r["kind"] for r in rows].count("queue") == 1  # queue settings are shared by every tenant


def test_a_definition_of_the_same_class_under_another_id_is_skipped_and_relinked(
    make_db: Callable[[str], str],
) -> None:
    source = make_db("sqlite")
    ids = seed(source)
    target = make_db("sqlite")
    with session_scope(target) as session:
        session.add(JobDefinition(id="existing-global", tenant_id=None, name="Echo", job_class="demo.echo"))
    report = load(target, dump(source))
    assert report.skipped["definition"] == 1 and report.imported["definition"] == 1
    with session_scope(target) as session:
        assert session.get(JobSchedule, ids["schedule"]).job_definition_id == "existing-global"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda lines: [lines[0], *lines[1:3], "{not json", *lines[3:]], "line 4: not JSON"),
        (lambda lines: lines[:-1], "no end line"),
        (lambda lines: ['{"kind": "header", "format": "other"}', *lines[1:]], "not a Celeriac backup"),
        (lambda lines: [lines[0], '{"kind": "execution", "row": {"status": "pending"}}', *lines[1:]],
         "line 2: execution: id"),
        (lambda lines: [lines[0], '{"kind": "execution", "row": {"id": "x", "bogus": 1}}', *lines[1:]],
         "unknown column"),
        (lambda lines: [lines[0], '{"kind": "execution", "row": {"id": "x", "created_at": "soon"}}', *lines[1:]],
         "not an ISO 8601 time"),
        (lambda lines: [lines[0], '{"kind": "gizmo", "row": {}}', *lines[1:]], "unknown kind"),
    ],
)  # fmt: skip
def test_a_bad_file_names_its_line_and_imports_nothing(
    make_db: Callable[[str], str], mangle: Callable[[list[str]], list[str]], message: str
) -> None:
    source = make_db("sqlite")
    seed(source)
    bad = "\n".join(mangle(dump(source).splitlines())) + "\n"
    target = make_db("sqlite")
    with pytest.raises(ValidationError) as refused:
        load(target, bad)
    assert message in str(refused.value)
    assert all(not rows for rows in snapshot(target).values())


def test_cli_export_import_counts_and_errors(app: Any, tmp_path: Path, unique: str) -> None:
    with session_scope() as session:
        session.add(JobExecution(id=str(uuid.uuid4()), tenant_id=unique, job_class="demo.echo", status="completed"))
    runner = app.test_cli_runner()
    path = tmp_path / "backup.jsonl"
    exported = runner.invoke(
        args=["celeriac", "export", "--to", str(path), "--tenant", unique, "--since", "2020-01-01"]
    )
    assert exported.exit_code == 0, exported.output
    assert "execution 1" in exported.output
    imported = runner.invoke(args=["celeriac", "import", str(path)])
    assert imported.exit_code == 0, imported.output
    assert "execution: imported 0, skipped 1" in imported.output
    path.write_text(path.read_text().replace('"kind":"end"', '"kind":"ending"'))
    refused = runner.invoke(args=["celeriac", "import", str(path)])
    assert refused.exit_code == 3 and "unknown kind 'ending'" in refused.output
    assert "nothing was imported" in refused.output
    assert "Traceback" not in refused.output
    bad_since = runner.invoke(args=["celeriac", "export", "--to", str(path), "--since", "yesterday"])
    assert bad_since.exit_code == 3 and "--since must be" in bad_since.output
    missing = runner.invoke(args=["celeriac", "import", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 3 and "cannot read" in missing.output


@pytest.mark.redis
def test_requeue_pending_publishes_only_jobs_no_queue_holds(
    app: Any, client: Any, auth: Any, tmp_path: Path, unique: str, redis_client: Any, recorder: Any
) -> None:
    queue = f"backup-{unique}"  # no worker consumes it: messages stay in the list
    headers = auth("operator", tenant=unique)
    job_ids = []
    for value in ("lost", "kept"):
        answer = client.post(
            "/api/jobs/dispatch",
            json={"job_class": "demo.echo", "payload": {"value": value}, "options": {"queue": queue}},
            headers=headers,
        )  # fmt: skip
        assert answer.status_code == 201, answer.get_data(as_text=True)
        job_ids.append(answer.get_json()["id"])
    lost, kept = job_ids
    broker_list = f"{queue}:4"  # the default priority 5's list (kombu's step 9 - 5)

    def queued() -> list[str]:
        return [json.loads(raw)["headers"]["id"] for raw in redis_client.lrange(broker_list, 0, -1)]

    assert sorted(queued()) == sorted(job_ids)
    path = tmp_path / "pending.jsonl"
    runner = app.test_cli_runner()
    assert runner.invoke(args=["celeriac", "export", "--to", str(path), "--tenant", unique]).exit_code == 0
    # A restore after losing the rows, and the broker lost one message (once the recorder
    # wrote the dispatches' events: a late one would make the deleted rows again):
    wait_events_recorded(redis_client)
    with session_scope() as session:
        session.execute(delete(JobExecution).where(JobExecution.id.in_(job_ids)))
    lost_message = next(raw for raw in redis_client.lrange(broker_list, 0, -1) if lost.encode() in raw)
    redis_client.lrem(broker_list, 0, lost_message)
    assert queued() == [kept]

    result = runner.invoke(args=["celeriac", "import", str(path), "--requeue-pending"])
    assert result.exit_code == 0, result.output
    assert "re-queued 1, already in a queue 1" in result.output
    assert sorted(queued()) == sorted(job_ids)  # the lost one back, the kept one not twice
    message = json.loads(next(raw for raw in redis_client.lrange(broker_list, 0, -1) if lost.encode() in raw))
    assert message["headers"]["celeriac"]["tenant"] == unique
    again = runner.invoke(args=["celeriac", "import", str(path), "--requeue-pending"])
    assert "execution: imported 0, skipped 2" in again.output and "re-queued 0" in again.output
    assert sorted(queued()) == sorted(job_ids)
    with session_scope() as session:
        assert {row.status for row in session.scalars(select(JobExecution).where(JobExecution.id.in_(job_ids)))} == {
            "pending"
        }
