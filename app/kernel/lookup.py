"""Finding a job's row for a tenant: the one tenant check every read and action goes through."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import JobExecution


def get_job(session: Session, job_id: str, tenant_id: str | None) -> JobExecution:
    """The execution `job_id`, if `tenant_id` may see it (None: any tenant).

    Raises:
        NotFound: unknown id, or another tenant's job.
    """
    row = session.get(JobExecution, job_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        raise NotFound(f"no job {job_id}")
    return row
