"""Migration 0011 on a database of its own: the running totals start from every minute row
kept, and a downgrade folds hourly and daily rows back into minutes (no counter goes down)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from app.db import db
from app.models import JobStatsHour, JobStatsMinute

MIGRATIONS = str(Path(__file__).resolve().parents[2] / "migrations")
MINUTES = [
    {"minute": datetime(2030, 1, 1, 10, m, tzinfo=UTC), "tenant_id": "t", "queue": "q", "job_class": "c",
     "completed": 2, "failed": 1, "runtime_count": 2, "runtime_sum_ms": 300, "runtime_max_ms": 200, "b3": 2}
    for m in range(3)
]  # fmt: skip


@pytest.fixture()
def fresh_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the kind the suite runs on."""
    if os.environ.get("CELERIAC_TEST_DB") != "postgresql":
        yield f"sqlite:///{tmp_path / 'migration.db'}"
        return
    import psycopg

    admin = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"celeriac_migration_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield "postgresql+psycopg://" + admin.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _total(conn: Any, column: str) -> int:
    return int(conn.scalar(select(func.sum(db.metadata.tables["job_stats_total"].c[column]))) or 0)


def test_totals_start_from_the_minute_rows_and_downgrade_keeps_the_rolled_rows(fresh_url: str) -> None:
    from flask_migrate import downgrade, upgrade

    from ops_ui import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_url, "SQLALCHEMY_ENGINE_OPTIONS": {}})
    with app.app_context():
        assert db.engine.url.render_as_string(hide_password=False) == fresh_url  # never the suite's database
        upgrade(directory=MIGRATIONS, revision="0010")
        with db.engine.begin() as conn:
            conn.execute(insert(JobStatsMinute.__table__), MINUTES)

        upgrade(directory=MIGRATIONS, revision="0011")
        with db.engine.begin() as conn:
            assert (_total(conn, "completed"), _total(conn, "failed"), _total(conn, "b3")) == (6, 3, 6)
            last = conn.scalar(select(db.metadata.tables["job_stats_total"].c.last_minute))
            assert last == MINUTES[-1]["minute"]
            rolled = {key: value for key, value in MINUTES[0].items() if key != "minute"}
            conn.execute(
                insert(JobStatsHour.__table__), {**rolled, "hour": datetime(2030, 1, 1, 9, tzinfo=UTC), "completed": 5}
            )

        downgrade(directory=MIGRATIONS, revision="0010")
        with db.engine.connect() as conn:
            minutes = JobStatsMinute.__table__
            assert conn.scalar(select(func.sum(minutes.c.completed))) == 6 + 5
            assert conn.scalar(select(func.count()).select_from(minutes)) == 4
        db.engine.dispose()
