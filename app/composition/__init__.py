"""Job composition (J5-J8): batches, chains, dependencies and unique jobs."""

from app.composition.builders import Dispatched, PendingBatch, PendingChain, batch, chain

__all__ = ["Dispatched", "PendingBatch", "PendingChain", "batch", "chain"]
