"""Entries of the event stream as the recorder reads them, and the figures it keeps on them."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("app.recorder")

#: Lag samples kept for the percentiles.
LAG_WINDOW = 10_000

#: One stream entry: its id and its fields.
Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass
class RecorderStats:
    """Counters the recorder publishes to Redis for /metrics and health."""

    events: int = 0
    batches: int = 0
    dead: int = 0
    failures: int = 0
    lags_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))

    def percentile(self, q: float) -> float:
        if not self.lags_ms:
            return 0.0
        ordered = sorted(self.lags_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def published(self, backlog: int) -> dict[Any, Any]:
        """The recorder's stats hash in Redis, as /metrics and health read it."""
        return {
            "lag_p50_ms": round(self.percentile(0.50), 1),
            "lag_p99_ms": round(self.percentile(0.99), 1),
            "events_total": self.events,
            "batches_total": self.batches,
            "dead_total": self.dead,
            "failures_total": self.failures,
            "backlog": backlog,
            "updated_at": time.time(),
        }


def is_event(value: Any) -> bool:
    return isinstance(value, dict) and "id" in value and "t" in value


def decode_entries(entries: Sequence[Entry]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Parse stream entries: one event (field "e") or a buffer's flush (field "b", a list).

    Returns (events, ids of entries that held no event at all); every event carries its
    entry's id as `_sid`, so an entry is acknowledged once all of its events are written.
    """
    events: list[dict[str, Any]] = []
    junk: list[bytes] = []
    for entry_id, fields in entries:
        try:
            decoded = json.loads(fields[b"b"]) if b"b" in fields else [json.loads(fields[b"e"])]
            found = [event for event in decoded if is_event(event)] if isinstance(decoded, list) else []
        except (KeyError, ValueError):
            found = []
        if not found:
            junk.append(entry_id)
            continue
        if len(found) < len(decoded):
            logger.error("Recorder: entry %s held %d items that were not events", entry_id, len(decoded) - len(found))
        for event in found:
            event["_sid"] = entry_id
        events.extend(found)
    return events, junk
