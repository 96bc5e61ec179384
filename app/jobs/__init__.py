"""Public job API: `Job`, `job`, `batch`, `chain`, and the priority constants."""

from app.jobs.base import Job, job
from app.jobs.builders import Dispatched, PendingBatch, PendingChain, batch, chain
from celeriac.priority import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY

__all__ = [
    "DEFAULT_PRIORITY",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "Dispatched",
    "Job",
    "PendingBatch",
    "PendingChain",
    "batch",
    "chain",
    "job",
]
