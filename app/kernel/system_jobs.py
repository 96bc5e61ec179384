"""Celeriac's own jobs: its maintenance tasks, run by beat (history retention and the like).

They are real jobs with rows like any other, but an operator looks for their own work: the
console hides them by default (Jobs list, Performance), and advice about them is given only
when they fail. The API lists them like any job.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_

from app.models import JobExecution

#: Task-name prefixes of Celeriac's own tasks (tasks/maintenance.py).
SYSTEM_PREFIXES: tuple[str, ...] = ("celeriac.maintenance.",)
#: Jobs that watch their own cancel mark and stop between two steps (tasks/bulk.py): a cancel
#: never terminates their process, so what they did is kept and reported, and Celery's pool
#: is never left with a child that outlived its SIGTERM.
COOPERATIVE_CANCEL: frozenset[str] = frozenset({"celeriac.bulk"})


def is_system(job_class: str | None) -> bool:
    return bool(job_class) and str(job_class).startswith(SYSTEM_PREFIXES)


def not_system() -> ColumnElement[bool]:
    """SQL: the row is not one of Celeriac's own tasks (the prefixes hold no LIKE wildcards)."""
    return and_(*(JobExecution.job_class.not_like(f"{prefix}%") for prefix in SYSTEM_PREFIXES))


def system_only() -> ColumnElement[bool]:
    """SQL: the row is one of Celeriac's own tasks, as ranges of the job_class index (a LIKE
    prefix uses an index on neither database without special collations or operator classes)."""
    return or_(
        *(
            and_(JobExecution.job_class >= prefix, JobExecution.job_class < prefix[:-1] + chr(ord(prefix[-1]) + 1))
            for prefix in SYSTEM_PREFIXES
        )
    )


__all__ = ["COOPERATIVE_CANCEL", "SYSTEM_PREFIXES", "is_system", "not_system", "system_only"]
