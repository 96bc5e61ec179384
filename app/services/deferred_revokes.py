"""A canceller that gathers revokes and broadcasts them at once: bulk cancels of thousands
of jobs cost one remote-control message per chunk, not one per job."""

from __future__ import annotations

from collections.abc import Callable

from app.kernel.ports import Canceller


class DeferredRevokes:
    """A Canceller that sends one revoke broadcast per chunk instead of one per job.

    The persistent cancel mark is still set per job before its row changes, so a job that
    a worker picks up in between is skipped; only the terminate of running jobs waits for
    the end of the chunk.
    """

    def __init__(self, inner: Canceller, revoke_many: Callable[[list[str]], None]) -> None:
        self.inner = inner
        self.revoke_many = revoke_many
        self.waiting: list[str] = []

    def mark_cancelled(self, job_id: str) -> None:
        self.inner.mark_cancelled(job_id)

    def clear_mark(self, job_id: str) -> None:
        self.inner.clear_mark(job_id)

    def revoke(self, job_id: str, terminate: bool) -> None:
        self.waiting.append(job_id)

    def announce(self, job_id: str, reason: str) -> None:
        self.inner.announce(job_id, reason)

    def flush(self) -> None:
        if self.waiting:
            ids, self.waiting = self.waiting, []
            self.revoke_many(ids)
