"""Job composition (J5-J8): batches, chains, dependencies, unique jobs, and submitting a job.

`batch` and `chain`, the fluent builders for code, live with the rest of the code API in
`app.jobs`; `from app.composition import batch, chain` keeps working for existing code.
"""

from typing import Any

_BUILDERS = ("Dispatched", "PendingBatch", "PendingChain", "batch", "chain")


def __getattr__(name: str) -> Any:
    """The builders, imported on first use: the code API sits above this package."""
    if name in _BUILDERS:
        from app.jobs import builders

        return getattr(builders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
