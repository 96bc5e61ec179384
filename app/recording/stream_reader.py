"""The recorder's side of the event stream: its consumer group, reading, claiming, acknowledging.

What the recorder writes to SQL is its own business (app.recorder); this is how it reads
the stream so that nothing is acknowledged before it is written: own pending entries first
after a restart or a failed write, entries of a dead recorder claimed after CLAIM_IDLE_MS,
and the backlog published for /metrics, health and the reconciler's check.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

import redis

from app import redis_keys
from app.config import Settings
from app.recording.stream import Entry, RecorderStats

#: Pending events of another (dead) recorder are claimed after this many idle ms (a write
#: takes well under a second; a recorder retrying through an SQL outage re-reads its own).
CLAIM_IDLE_MS = 15_000


class StreamReader:
    """One consumer of the event stream's recorder group."""

    def __init__(self, settings: Settings, client: redis.Redis, name: str | None = None) -> None:
        self.settings = settings
        self.redis = client
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.stats = RecorderStats()
        #: Read our own pending entries first (after a restart or a failed write).
        self._read_pending = True
        #: Events in the stream not yet written (from the last stats).
        self.backlog = 0

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(redis_keys.EVENTS_STREAM, redis_keys.RECORDER_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _xread(self, start: str, count: int, block_ms: int | None) -> list[Entry]:
        response = self.redis.xreadgroup(
            redis_keys.RECORDER_GROUP,
            self.name,
            {redis_keys.EVENTS_STREAM: start},
            count=count,
            block=block_ms,
        )
        entries: list[Entry] = response[0][1] if response else []  # type: ignore[index,assignment]
        return entries

    def read(self) -> list[Entry]:
        """The next batch: own pending events first, then new ones.

        New events are gathered for up to `recorder_linger_ms` once the first arrive: workers
        flush every 20 ms, and one SQL transaction per dozen events would cost more CPU
        than the jobs themselves.
        """
        size = self.settings.recorder_batch_size
        if self._read_pending:
            entries = self._xread("0", size, None)
            if not entries:
                self._read_pending = False
            return entries
        entries = self._xread(">", size, self.settings.recorder_block_ms)
        deadline = time.monotonic() + self.settings.recorder_linger_ms / 1000
        while entries and len(entries) < size:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            more = self._xread(">", size - len(entries), remaining_ms)
            if not more:
                break
            entries.extend(more)
        return entries

    def claim_stale(self) -> int:
        """Take over events another recorder read but never acknowledged."""
        _next, claimed, *_rest = self.redis.xautoclaim(
            redis_keys.EVENTS_STREAM,
            redis_keys.RECORDER_GROUP,
            self.name,
            min_idle_time=CLAIM_IDLE_MS,
            start_id="0-0",
            count=self.settings.recorder_batch_size,
        )
        if claimed:
            self._read_pending = True
        return len(claimed)

    def _ack(self, ids: Sequence[bytes]) -> None:
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.xack(redis_keys.EVENTS_STREAM, redis_keys.RECORDER_GROUP, *ids)
        pipe.xdel(redis_keys.EVENTS_STREAM, *ids)
        pipe.execute()

    def publish_stats_quietly(self) -> None:
        """Read the stream's backlog (for the reconciler's check) without failing on a missing group."""
        try:
            self.backlog = self._backlog()
        except redis.ResponseError:
            self.backlog = 0  # no stream yet: nothing waits to be written

    def publish_stats(self) -> None:
        backlog = self._backlog()
        self.backlog = backlog
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(redis_keys.RECORDER_STATS, mapping=self.stats.published(backlog))
        pipe.set(redis_keys.RECORDER_HEARTBEAT, self.name, ex=redis_keys.RECORDER_HEARTBEAT_TTL_S)
        pipe.execute()

    def _backlog(self) -> int:
        for group in self.redis.xinfo_groups(redis_keys.EVENTS_STREAM):
            if group.get("name") in (redis_keys.RECORDER_GROUP, redis_keys.RECORDER_GROUP.encode()):
                return int(group.get("lag") or 0) + int(group.get("pending") or 0)
        return 0
