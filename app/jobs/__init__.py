"""Public job API: `Job`, `job`, and the priority constants."""

from app.jobs.base import Job, job
from app.priority import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY

__all__ = ["DEFAULT_PRIORITY", "MAX_PRIORITY", "MIN_PRIORITY", "Job", "job"]
