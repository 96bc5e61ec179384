"""The migrations build exactly the schema the models describe (no drift either way)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext


def test_migrated_database_matches_the_models(app: Any) -> None:
    from app.db import db

    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), db.metadata)
    assert diffs == []
