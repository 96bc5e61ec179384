"""A dispatching process of the benchmark, driven over stdin: `python -m bench.dispatch_probe MODE`.

MODE `plain`: a Celery app of its own that imports nothing of Celeriac (no signal handler,
no hook), on the benchmark's Redis, configured as Celeriac configures the broker (priority
lists, JSON): `apply_async`. MODE `celeriac`: Celeriac on DATABASE_URL: `Job.dispatch`, and
for bulk runs `Job.dispatch_many` and `batch([...])`. Commands, one per line:

    dispatch N   -> a JSON list of N latencies in ms, one dispatch after another
    bulk N       -> JSON {"dispatch_many_s": ..., "batch_s": ...}, N jobs each
    token        -> an operator API token of this database
    clear        -> the benchmark queue emptied

It prints "ready" once warmed up. Long-lived, so that the benchmark can interleave rounds of
the modes: the machine's load then weighs on all of them alike.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

#: The queue every probe dispatches to; no worker consumes it.
QUEUE = "bench-probe"
#: Dispatches before "ready": connections opened, caches and code paths warm.
WARM_UP = 300


def _plain() -> tuple[Callable[[int], None], Callable[[], None]]:
    from celery import Celery

    app = Celery("plain", broker=os.environ["REDIS_URL"])
    app.conf.broker_transport_options = {"priority_steps": list(range(10)), "sep": ":"}
    app.conf.task_serializer = "json"

    @app.task(name="bench.plain_noop")
    def noop(i: int = 0) -> None:
        return None

    def dispatch(i: int) -> None:
        noop.apply_async(kwargs={"i": i}, queue=QUEUE, priority=4)

    return dispatch, lambda: _clear(os.environ["REDIS_URL"])


def _celeriac() -> tuple[Callable[[int], None], Callable[[], None]]:
    from app.celery_app import celery_app  # noqa: F401  (connects Celeriac's hooks, as a project does)
    from app.config import get_settings
    from app.jobs.celery_backend import sync_registry_definitions
    from tasks.demo import Echo

    sync_registry_definitions()
    pending = Echo.on_queue(QUEUE)

    def dispatch(i: int) -> None:
        pending.dispatch(value=i)

    return dispatch, lambda: _clear(get_settings().redis_url)


def _clear(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE, *[f"{QUEUE}:{priority}" for priority in range(1, 10)])


def _bulk(n: int) -> dict[str, float | None]:
    from app.jobs import batch
    from tasks.demo import Echo

    many = None
    if hasattr(Echo, "dispatch_many"):  # (not before issue 15)
        started = time.perf_counter()
        Echo.dispatch_many([{"value": i} for i in range(n)], queue=QUEUE)
        many = round(time.perf_counter() - started, 3)
    calls = [Echo.on_queue(QUEUE).make(value=i) for i in range(n)]
    started = time.perf_counter()
    batch(calls).name("bench").dispatch()
    return {"dispatch_many_s": many, "batch_s": round(time.perf_counter() - started, 3)}


def _token() -> str:
    from app.db import db
    from app.services.auth import create_token
    from ops_ui import create_app

    with create_app({"TESTING": True}).app_context():
        new = create_token(db.session, "bench", "operator", name="bench")
        db.session.commit()
        return new.raw


def main() -> None:
    mode = sys.argv[1]
    dispatch, clear = _plain() if mode == "plain" else _celeriac()
    for i in range(WARM_UP):
        dispatch(i)
    clear()
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        answer: Any
        if command == "dispatch":
            timings = []
            for i in range(int(argument)):
                started = time.perf_counter()
                dispatch(i)
                timings.append(round((time.perf_counter() - started) * 1000, 4))
            answer = timings
        elif command == "bulk":
            answer = _bulk(int(argument))
        elif command == "token":
            answer = _token()
        elif command == "clear":
            clear()
            answer = "ok"
        else:
            answer = f"unknown command {command!r}"
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
