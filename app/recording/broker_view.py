"""What the broker holds, as the reconciler reads it: kombu's unacknowledged messages and
the queues' lists on Redis, and the (status, queue) pairs of live rows to check against them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.models import JobExecution
from celeriac import header


@dataclass(frozen=True)
class Unacked:
    """One entry of kombu's `unacked` hash: a message a worker took and has not acknowledged."""

    tag: str
    job_id: str | None
    delivered_at: float
    #: The routing key it was delivered with (its queue, for Celery's direct routing).
    queue: str | None = None


class Broker:
    """What the reconciler reads and moves in Celery's Redis broker, through kombu's own
    channel (so key names, prefixes, priority lists and restores are exactly kombu's)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.client = channel.client

    def unacked(self) -> list[Unacked]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.channel.unacked_key)
        delivered = dict(self.client.zrange(self.channel.unacked_index_key, 0, -1, withscores=True))
        entries = []
        for tag, value in raw.items():
            queue = None
            try:
                message = json.loads(value)
                job_id = message[0]["headers"].get("id")
                queue = message[2] if len(message) > 2 and isinstance(message[2], str) else None
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                job_id = None
            entries.append(Unacked(tag.decode(), job_id, float(delivered.get(tag, 0.0)), queue))
        return entries

    def queue_lists(self, queue: str) -> list[str]:
        steps = sorted(set(self.channel.priority_steps))
        return [self.channel._q_for_pri(queue, step) for step in steps]

    def oldest_published_at(self, queue: str, now: float) -> float | None:
        """Publish time of the oldest message still in `queue` (over its priority lists);
        `now` when the queue is empty; None when a message there has no publish time."""
        pipe = self.client.pipeline(transaction=False)
        for name in self.queue_lists(queue):
            pipe.lindex(name, -1)
        oldest = now
        for raw in pipe.execute():
            if raw is None:
                continue
            try:
                stamped = header.published_at(json.loads(raw).get("headers"))
            except (ValueError, AttributeError):
                stamped = None
            if stamped is None:
                return None  # published without Celeriac: we cannot order this queue
            oldest = min(oldest, stamped)
        return oldest

    def restore(self, tag: str) -> None:
        """Put an unacknowledged message back at the head of its queue (kombu's own restore)."""
        self.channel.qos.restore_by_tag(tag)

    def drop(self, tag: str) -> None:
        """Remove an unacknowledged message for good (a job failed by the loss limit)."""
        self.channel.qos._remove_from_indices(tag).execute()


def live_queues(session: Session, statuses: Iterable[str]) -> list[tuple[str, str]]:
    """Distinct (status, queue) pairs among rows of `statuses`, by a loose index scan:
    one index seek per pair, however many rows each holds."""
    pairs: list[tuple[str, str]] = []
    for status in statuses:
        last: str | None = None
        while True:
            query = select(JobExecution.queue).where(JobExecution.status == status)
            if last is not None:
                query = query.where(tuple_(JobExecution.queue) > tuple_(last))
            queue = session.scalar(query.order_by(JobExecution.queue).limit(1))
            if queue is None:
                break
            pairs.append((status, queue))
            last = queue
    return pairs
