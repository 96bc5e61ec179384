"""This process's backends, reached through one accessor: `backends()`.

The real ones (Celery, Redis, RedBeat) are built once per process by the entry point that
runs first: `app.celery_app.connect_worker` in workers, beat, the recorder and anything
that imports the code API, `ops_ui.create_app` in the web process; both call `start`.
Unit tests put in-memory twins (app.backends.twins) in their place with `replaced`, and
users' tests swap the publisher through `app.testing.fake_queue`, which uses it too.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.kernel.ports import Canceller, Clock, Publisher, Registry, ScheduleStore, WorkerControl


@dataclasses.dataclass(frozen=True)
class Backends:
    """Every backend Celeriac's logic talks to (the Protocols of app.kernel.ports)."""

    publisher: Publisher
    registry: Registry
    canceller: Canceller
    workers: WorkerControl
    schedules: ScheduleStore
    clock: Clock


_current: Backends | None = None
_lock = threading.Lock()


def backends() -> Backends:
    """The backends in use in this process.

    Raises:
        RuntimeError: nothing started them (neither connect_worker nor create_app ran here).
    """
    current = _current
    if current is None:
        raise RuntimeError(
            "no backends in this process: import app.celery_app (connect_worker) or call ops_ui.create_app first"
        )
    return current


def start(build: Callable[[], Backends]) -> Backends:
    """The backends in use, made by `build` if this process has none yet (so: once)."""
    global _current
    with _lock:
        if _current is None:
            _current = build()
        return _current


def install(new: Backends | None) -> Backends | None:
    """Use `new` from now on (None: nothing until the next `start`); returns what it replaced."""
    global _current
    with _lock:
        previous, _current = _current, new
        return previous


@contextmanager
def replaced(**changes: Any) -> Iterator[Backends]:
    """The backends in use with `changes` (e.g. `publisher=...`) for the block; the previous ones
    come back after it, even if an inner block replaced them again."""
    previous = backends()
    install(dataclasses.replace(previous, **changes))
    try:
        yield backends()
    finally:
        install(previous)
