"""Public job API: `Job`, `job`, `batch`, `chain`, `define_queue`, and the priority constants."""

from app.jobs.base import Job, job
from app.jobs.builders import Dispatched, PendingBatch, PendingChain, batch, chain
from app.kernel.queue_defaults import define_queue
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
    "define_queue",
    "job",
]
