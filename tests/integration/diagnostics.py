"""What the session's real parts were doing when an integration test failed.

A job "never finished" in CI can mean a worker that never took it, a recorder that stopped or
waits on a lock, or events another consumer of the stream holds. The report below says
which, in a few lines, so a failure seen once in CI can be explained from its output alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


def _decoded(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _safely(title: str, produce: Callable[[], Iterable[str]]) -> list[str]:
    try:
        return [f"{title}:", *(f"  {line}" for line in produce())]
    except Exception as exc:  # a diagnostic must never hide the failure it explains
        return [f"{title}: could not tell ({type(exc).__name__}: {exc})"]


def recorder_lines(threads: Iterable[Any]) -> Iterator[str]:
    now = time.monotonic()
    for thread in threads:
        since = f"{now - thread.last_round_at:.1f}s ago" if thread.last_round_at else "never"
        yield (
            f"{thread.recorder.name}: alive={thread.thread.is_alive()} paused={thread._paused.is_set()}"
            f" rounds={thread.rounds} last round ended {since} last error={thread.last_error!r}"
        )


def stream_lines(redis_client: Any) -> Iterator[str]:
    from app import redis_keys

    stream = redis_keys.EVENTS_STREAM
    yield f"{stream}: length {redis_client.xlen(stream)}"
    for group in redis_client.xinfo_groups(stream):
        info = {_decoded(k): _decoded(v) for k, v in group.items()}
        yield f"group {info.get('name')}: pending {info.get('pending')} lag {info.get('lag')}"
    for consumer in redis_client.xinfo_consumers(stream, redis_keys.RECORDER_GROUP):
        info = {_decoded(k): _decoded(v) for k, v in consumer.items()}
        yield f"consumer {info.get('name')}: pending {info.get('pending')} idle {info.get('idle')} ms"


def broker_lines(redis_client: Any) -> Iterator[str]:
    from app.control.pauses import paused_queues

    yield f"paused queues: {sorted(paused_queues(redis_client)) or 'none'}"
    yield f"unacknowledged messages: {redis_client.hlen('unacked')}"


def database_lines() -> Iterator[str]:
    from sqlalchemy import text

    from app.db import session_scope
    from tests.conftest import DATABASE_URL

    if not DATABASE_URL.startswith("postgresql"):
        yield "SQLite: no other sessions to show"
        return
    with session_scope() as session:
        rows = session.execute(
            text(
                "SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS age, left(query, 120)"
                " FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle'"
                " AND pid <> pg_backend_pid()"
            )
        ).all()
    yield from (str(tuple(row)) for row in rows) if rows else ["none busy"]


def worker_lines(workers: Iterable[Any], lines: int = 8) -> Iterator[str]:
    for worker in workers:
        state = "running" if worker.process.poll() is None else f"exited {worker.process.returncode}"
        yield f"{worker.hostname} on {worker.queues} (pid {worker.process.pid}, {state}):"
        tail = Path(worker.log_path).read_text(errors="replace").splitlines()[-lines:]
        yield from (f"  | {line[:200]}" for line in tail)


def stray_lines(workers: Iterable[Any]) -> Iterator[str]:
    """Processes on this session's Redis database that no live WorkerProcess accounts for: one
    left behind by an earlier test would take this test's messages or events."""
    import os

    import psutil

    from tests.conftest import REDIS_URL

    known = {os.getpid()}
    for worker in workers:
        try:
            family = psutil.Process(worker.process.pid)
            known |= {family.pid, *(child.pid for child in family.children(recursive=True))}
        except psutil.Error:
            continue
    found = False
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if process.pid in known or process.environ().get("REDIS_URL") != REDIS_URL:
                continue
        except psutil.Error:
            continue
        found = True
        yield f"pid {process.pid}: {' '.join(process.info['cmdline'] or [])[:160]}"
    if not found:
        yield "none"


def report(redis_client: Any, threads: Iterable[Any], workers: Iterable[Any]) -> str:
    """A short account of the recorder threads, the event stream, the broker, the database and
    the live workers."""
    out = [
        *_safely("recorder threads", lambda: recorder_lines(threads)),
        *_safely("event stream", lambda: stream_lines(redis_client)),
        *_safely("broker", lambda: broker_lines(redis_client)),
        *_safely("database sessions", database_lines),
        *_safely("workers", lambda: worker_lines(workers)),
        *_safely("other processes on this Redis database", lambda: stray_lines(workers)),
    ]
    return "\n".join(out)
