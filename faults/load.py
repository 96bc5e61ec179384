"""The load: probe dispatches from code (in this process) and through the HTTP API, paced
over a window, each one recorded as accepted (it returned an id) or refused (an error).

The mix is drawn from a seeded generator, so a run can be repeated: most probes return at
once, some sleep a little, a few sleep 1-2 s (kills land inside them), a few fail on purpose.
Drawn from a second generator (so the mix above is the same as before they existed): a share
is dispatched with a delay longer than CELERIAC_SCHEDULED_AFTER_S (held in Celeriac's scheduled
set, due during and after the fault), and another share under a concurrency key and limit.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from faults.features import Delayed
from faults.verdict import Accepted

logger = logging.getLogger("faults")

#: Seconds an HTTP dispatch may take before the client gives up (counted as refused).
HTTP_TIMEOUT_S = 10.0
#: Share of dispatches sent through the API instead of code.
HTTP_SHARE = 0.1
#: Share of probes told to fail (their row must say failed).
FAIL_SHARE = 0.03
#: (share, shortest s, longest s) of sleeping probes; the rest return at once.
SLEEPS = ((0.10, 0.05, 0.3), (0.05, 1.0, 2.0))
#: Share of probes dispatched with a delay, and its range in seconds: longer than the stack's
#: CELERIAC_SCHEDULED_AFTER_S (faults.stack), so they wait in the scheduled set.
DELAY_SHARE = 0.10
DELAYS_S = (3.0, 20.0)
#: Share of probes dispatched under one concurrency key, and its limit. The worker runs two
#: processes (`-c 2`), so a limit of 1 is one the pool alone would not enforce.
LIMITED_SHARE = 0.10
CONCURRENCY_KEY = "faults"
CONCURRENCY_LIMIT = 1
#: Shortest and longest run of a limited probe, in seconds: long enough that the other pool
#: process often picks another limited probe meanwhile (it must then be parked).
LIMITED_SLEEP_S = (0.2, 0.8)


class Refused(Exception):
    """The API answered something other than 201 with an id."""


@dataclass(frozen=True)
class ProbeSpec:
    token: str
    seconds: float
    fail: bool
    via: str  # "code" or "http"
    #: Seconds of delay (0: none).
    delay_s: float = 0.0
    #: Dispatched under CONCURRENCY_KEY with CONCURRENCY_LIMIT.
    limited: bool = False

    def payload(self) -> dict[str, Any]:
        return {"token": self.token, "seconds": self.seconds, "fail": self.fail}

    def code_options(self) -> dict[str, Any]:
        """Options of a dispatch from code (app.jobs.dispatch.PendingDispatch)."""
        options: dict[str, Any] = {}
        if self.delay_s:
            options["delay_s"] = self.delay_s
        if self.limited:
            options.update(concurrency_key=CONCURRENCY_KEY, concurrency_limit=CONCURRENCY_LIMIT)
        return options

    def api_options(self) -> dict[str, Any]:
        """The same options in `POST /api/jobs/dispatch`'s words."""
        options = self.code_options()
        if "delay_s" in options:
            options["delay"] = options.pop("delay_s")
        return options


def plan(n: int, seed: int, prefix: str) -> list[ProbeSpec]:
    """`n` probes; the same seed gives the same probes."""
    rng = random.Random(seed)
    extras = random.Random(f"{seed}-delays-and-limits")
    specs = []
    for i in range(n):
        roll = rng.random()
        seconds = 0.0
        floor = 0.0
        for share, low, high in SLEEPS:
            if floor <= roll < floor + share:
                seconds = round(rng.uniform(low, high), 3)
            floor += share
        fail = rng.random() < FAIL_SHARE
        via = "http" if rng.random() < HTTP_SHARE else "code"
        roll = extras.random()
        delay = round(extras.uniform(*DELAYS_S), 3) if roll < DELAY_SHARE else 0.0
        limited = DELAY_SHARE <= roll < DELAY_SHARE + LIMITED_SHARE
        if limited:
            seconds = max(seconds, round(extras.uniform(*LIMITED_SLEEP_S), 3))
        specs.append(ProbeSpec(f"{prefix}-{i:05d}", seconds, fail, via, delay, limited))
    return specs


@dataclass
class Dispatch:
    spec: ProbeSpec
    started: float = 0.0
    #: Wall time when the dispatch began (a delayed job is due `delay_s` after it, or later).
    wall: float = 0.0
    answered: float | None = None
    job_id: str | None = None
    error: str | None = None


@dataclass
class LoadResult:
    dispatches: list[Dispatch] = field(default_factory=list)

    def accepted(self) -> list[Accepted]:
        return [Accepted(d.job_id, d.spec.token, d.started) for d in self.dispatches if d.job_id is not None]

    def delayed(self) -> list[Delayed]:
        """Accepted delayed dispatches, with the earliest moment each may run."""
        return [
            Delayed(d.job_id, d.spec.token, d.wall + d.spec.delay_s, d.spec.delay_s)
            for d in self.dispatches
            if d.job_id is not None and d.spec.delay_s
        ]

    def limited(self) -> list[Accepted]:
        """Accepted dispatches under the concurrency key."""
        return [Accepted(d.job_id, d.spec.token, d.started) for d in self.dispatches if d.job_id and d.spec.limited]

    def refused_tokens(self) -> set[str]:
        """Dispatches that answered an error, or had not answered when the load was judged."""
        return {d.spec.token for d in self.dispatches if d.job_id is None}

    def summary(self) -> dict[str, Any]:
        answered = [d for d in self.dispatches if d.answered is not None]
        errors = [d for d in answered if d.job_id is None]
        slowest = max((d.answered - d.started for d in answered if d.answered is not None), default=0.0)
        slow_errors = max((d.answered - d.started for d in errors if d.answered is not None), default=0.0)
        kinds: dict[str, int] = {}
        for d in errors:
            kind = f"{d.spec.via}: " + (d.error or "?").split(":", 1)[0][:60]
            kinds[kind] = kinds.get(kind, 0) + 1
        return {
            "dispatched": len(self.dispatches),
            "accepted": sum(1 for d in self.dispatches if d.job_id is not None),
            "errors": len(errors),
            "unanswered": len(self.dispatches) - len(answered),
            "via_http": sum(1 for d in self.dispatches if d.spec.via == "http"),
            "slowest_answer_s": round(slowest, 2),
            "slowest_error_s": round(slow_errors, 2),
            "answers_over_5s": sum(1 for d in answered if d.answered is not None and d.answered - d.started > 5),
            "error_kinds": kinds,
        }


class Load:
    """Dispatches `specs` evenly over `duration_s` from two threads (code, HTTP)."""

    def __init__(self, specs: list[ProbeSpec], duration_s: float, web_url: str, token: str) -> None:
        self.specs = specs
        self.duration_s = duration_s
        self.web_url = web_url
        self.token = token
        self.result = LoadResult([Dispatch(spec) for spec in specs])
        self.started_at = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.started_at = time.monotonic()
        step = self.duration_s / max(1, len(self.specs))
        lanes: dict[str, list[tuple[float, Dispatch]]] = {"code": [], "http": []}
        for index, dispatch in enumerate(self.result.dispatches):
            lanes[dispatch.spec.via].append((self.started_at + index * step, dispatch))
        for via, items in lanes.items():
            thread = threading.Thread(target=self._lane, args=(via, items), name=f"faults-load-{via}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def finished(self) -> bool:
        """No dispatch is coming or still waiting for its answer."""
        return bool(self._threads) and not any(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stop.set()

    def _lane(self, via: str, items: list[tuple[float, Dispatch]]) -> None:
        send = self._send_code if via == "code" else self._send_http
        for due, dispatch in items:
            if self._stop.is_set():
                return
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            dispatch.started = time.monotonic()
            dispatch.wall = time.time()
            try:
                dispatch.job_id = send(dispatch.spec)
            except Refused as exc:
                dispatch.error = str(exc)[:300]
            except Exception as exc:  # every failure of a dispatch is a result, not a harness error
                dispatch.error = f"{type(exc).__name__}: {exc}"[:300]
            dispatch.answered = time.monotonic()

    def _send_code(self, spec: ProbeSpec) -> str:
        from app.jobs.dispatch import PendingDispatch
        from faults.jobs import Probe
        from faults.stack import TENANT

        pending = Probe.for_tenant(TENANT)
        pending = PendingDispatch(pending.job_class, {**pending.options, **spec.code_options()})
        job_id: str = pending.dispatch(**spec.payload())
        return job_id

    def _send_http(self, spec: ProbeSpec) -> str:
        from faults.jobs import PROBE

        body = json.dumps({"job_class": PROBE, "payload": spec.payload(), "options": spec.api_options()}).encode()
        request = urllib.request.Request(f"{self.web_url}/api/jobs/dispatch", data=body, method="POST")
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
                status = answer.status
                data = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise Refused(f"HTTP {exc.code}: {exc.read()[:200]!r}") from exc
        if status != 201 or not data.get("id"):
            raise Refused(f"HTTP {status}: {data!r}")
        return str(data["id"])
