"""Worker registry (M2): heartbeats in Redis, read without asking workers anything.

Each worker's main process writes a hash per heartbeat (app.monitoring.heartbeat); readers
only read Redis, so a page view never waits for a broadcast reply. No Celery imports here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from app import redis_keys
from app.config import MonitoringConfig

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class Heartbeat:
    """One worker's state as its main process sees it."""

    hostname: str
    pid: int
    pool_size: int
    active: int
    processed: int
    queues: list[str]
    load_average: list[float]
    rss_mb: float
    started_at: float
    last_heartbeat: float
    #: Set by the last heartbeat of a warm shutdown: offline at once, no waiting.
    stopped_at: float | None = None
    #: Ids of every job this worker holds (running, waiting for a pool process, or for its
    #: ETA): a message in the broker's unacked set that no live worker holds is orphaned.
    held: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WorkerInfo:
    """A registry entry with its status, as the API shows it."""

    heartbeat: Heartbeat
    status: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        hb = self.heartbeat
        return {
            "hostname": hb.hostname,
            "status": self.status,
            "last_heartbeat": _iso(hb.last_heartbeat),
            "pool_size": hb.pool_size,
            "active": hb.active,
            "processed": hb.processed,
            "queues": hb.queues,
            "pid": hb.pid,
            "load_average": hb.load_average,
            "memory_mb": hb.rss_mb,
            "started_at": _iso(hb.started_at),
            "stopped_at": _iso(hb.stopped_at) if hb.stopped_at else None,
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def write_heartbeat(redis: Any, beat: Heartbeat, config: MonitoringConfig) -> None:
    """Store `beat` (one round trip); the entry outlives the worker by the forget age."""
    key = redis_keys.worker(beat.hostname)
    pipe = redis.pipeline(transaction=True)
    pipe.set(key, json.dumps(asdict(beat)), ex=config.forget_after_s)
    pipe.zadd(redis_keys.WORKERS, {beat.hostname: beat.last_heartbeat})
    pipe.execute()


def status_of(beat: Heartbeat, config: MonitoringConfig, now: float) -> str:
    if beat.stopped_at is not None or now - beat.last_heartbeat > config.offline_after_s:
        return OFFLINE
    return ONLINE


def list_workers(redis: Any, config: MonitoringConfig, now: float | None = None) -> list[WorkerInfo]:
    """Online workers and those offline for less than the forget age, by hostname."""
    now = time.time() if now is None else now
    # The index outlives nothing by much: drop names whose entries expired.
    redis.zremrangebyscore(redis_keys.WORKERS, "-inf", now - config.forget_after_s)
    names = sorted(n.decode() if isinstance(n, bytes) else str(n) for n in redis.zrange(redis_keys.WORKERS, 0, -1))
    return [WorkerInfo(beat, status_of(beat, config, now)) for beat in _load(redis, names)]


def find_worker(redis: Any, hostname: str) -> Heartbeat | None:
    """The last heartbeat of `hostname`, or None when it never beat or was forgotten."""
    found = _load(redis, [hostname])
    return found[0] if found else None


def _load(redis: Any, names: Iterable[str]) -> list[Heartbeat]:
    names = list(names)
    if not names:
        return []
    beats: list[Heartbeat] = []
    for raw in redis.mget([redis_keys.worker(n) for n in names]):
        if raw is None:
            continue
        try:
            beats.append(Heartbeat(**json.loads(raw)))
        except (ValueError, TypeError):
            continue  # written by another version: not ours to interpret
    return beats
