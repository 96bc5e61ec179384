"""pytest fixtures for a Celery project tracked by Celeriac: a real worker, and its events.

Load it with `pytest -p celeriac.pytest_plugin` (or `pytest_plugins = ["celeriac.pytest_plugin"]`
in your top-level conftest.py). Installing the `celeriac` package also registers it as a pytest
plugin, but it does nothing until a test asks for one of its fixtures. Tell it your Celery app
(`celeriac_app = "myproject.celery:app"` under `[tool.pytest.ini_options]`, `--celeriac-app`,
or a `celeriac_app` fixture of your own), then:

    def test_the_report_is_built(celeriac_worker, celeriac_events):
        result = build_report.delay(7)
        assert celeriac_events.outcome(result.id)["t"] == "ok"
        assert result.get(timeout=10) == {"rows": 120}

- `celeriac_worker`: a real Celery worker (Celery's own in-thread test worker,
  `celery.contrib.testing.worker.start_worker`, solo pool) for the test's duration, with
  Celeriac's tracking on: every task it runs emits the events the recorder turns into rows.
  Override `celeriac_worker_parameters` for its queues, pool or concurrency.
- `celeriac_events`: the events this test process emitted (the worker's and the test's own
  publishes), with `wait`, `outcome` and `kinds` (`EventLog`). They reach Redis's event stream
  as usual too.

Projects on Celeriac's own app want `-p app.testing_plugin` instead (docs/testing.md): it loads
this plugin, points it at Celeriac's app, and adds recorded rows and `fake_queue`.
Fixture names start with `celeriac_`, so this plugin sits beside pytest-celery and Celery's own
`celery.contrib.pytest` without shadowing their `celery_app` or `celery_worker`.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.utils.imports import symbol_by_name
from celery.worker import WorkController

import celeriac
from celeriac import signals

#: Event kinds (celeriac.events) that end a job: it will not run again.
OUTCOMES = ("ok", "fail", "cancel", "reject")
#: Celeriac's status names (docs/jobs.md) and the event kind that sets each.
KIND_OF_STATUS = {
    "pending": "pub",
    "processing": "start",
    "retrying": "retry",
    "completed": "ok",
    "failed": "fail",
    "cancelled": "cancel",
}
#: What `celeriac_worker` passes to `start_worker` unless `celeriac_worker_parameters` says otherwise.
WORKER_DEFAULTS: dict[str, Any] = {
    "pool": "solo",
    "concurrency": 1,
    "loglevel": "WARNING",
    # Celery's ping check needs `celery.contrib.testing.tasks` in your app; being ready is enough.
    "perform_ping_check": False,
    "shutdown_timeout": 30.0,
}

NO_APP = (
    'celeriac_worker needs your Celery app. Say which one: `celeriac_app = "myproject.celery:app"` under'
    " [tool.pytest.ini_options], `--celeriac-app myproject.celery:app`, or a `celeriac_app` fixture"
    " in conftest.py that returns it. On Celeriac's own app, load `-p app.testing_plugin` instead."
)


class CeleriacHooks:
    """Hooks other plugins may implement (app.testing_plugin does)."""

    @pytest.hookspec(firstresult=True)
    def pytest_celeriac_default_app(self, config: pytest.Config) -> str | None:
        """The Celery app ("module:attribute") to run when the user named none."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(CeleriacHooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = "The Celery app celeriac_worker runs, as module:attribute (e.g. myproject.celery:app)"
    parser.addini("celeriac_app", help_text, default="")
    parser.getgroup("celeriac").addoption("--celeriac-app", dest="celeriac_app", default=None, help=help_text)


# -- which app, and tracking on --------------------------------------------------------------
def load_app(spec: str) -> Celery:
    """The Celery app named by `spec` ("module:attribute").

    Raises:
        pytest.fail.Exception: nothing importable by that name, or not a Celery app (no traceback:
        the message says it all).
    """
    try:
        found = symbol_by_name(spec)
    except (ImportError, AttributeError, ValueError) as exc:
        pytest.fail(f"celeriac_app = {spec!r}: cannot import it ({exc})", pytrace=False)
    if not isinstance(found, Celery):
        pytest.fail(f"celeriac_app = {spec!r} is {type(found).__name__}, not a Celery app", pytrace=False)
    return found


def turn_tracking_on(app: Celery) -> None:
    """Celeriac's worker-side hooks on, as the project's own workers load them.

    A process that has them already (your celery module calls `celeriac.instrument(app)` on
    import, as docs/adopting.md says; Celeriac's own app connects them on import) keeps its
    own settings; otherwise `celeriac.instrument(app)` with its defaults (the broker's Redis).
    """
    if tracking_connected():
        return
    try:
        celeriac.instrument(app)
    except ValueError as exc:  # no Redis to record to: the message says why
        pytest.fail(str(exc), pytrace=False)


def tracking_connected() -> bool:
    """Whether this process's task signals already feed Celeriac's event stream."""
    return signals.is_tracking()


# -- the events this process emitted -----------------------------------------------------------
class EventLog:
    """Every event this process emitted while the fixture was active, in order, by job.

    Events are the compact dicts of `celeriac.events`: `t` (kind), `id` (job id), and per kind
    `res` (the result, on ok), `err` and `exc` (on fail and retry), `w` (the worker, on start)...
    Waiting is event-driven (no polling).
    """

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def record(self, event: dict[str, Any]) -> None:
        with self._changed:
            self._events.append(dict(event))
            self._changed.notify_all()

    def all(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._events)

    def of(self, job_id: str) -> list[dict[str, Any]]:
        """Job `job_id`'s events, in the order they were emitted."""
        return [event for event in self.all() if event.get("id") == job_id]

    def kinds(self, job_id: str) -> list[str]:
        """Job `job_id`'s event kinds, e.g. ["pub", "start", "retry", "start", "ok"]."""
        return [str(event["t"]) for event in self.of(job_id)]

    def wait(self, job_id: str, *kinds: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first event of job `job_id` of one of `kinds` (kinds or status names).

        Raises:
            AssertionError: none within `timeout` seconds; the message lists the job's events.
        """
        wanted = {KIND_OF_STATUS.get(kind, kind) for kind in kinds}
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self._events:
                    if event.get("id") == job_id and event.get("t") in wanted:
                        return dict(event)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        seen = ", ".join(self.kinds(job_id)) or "none"
        raise AssertionError(
            f"job {job_id}: no {' / '.join(sorted(wanted))} event within {timeout:g}s; its events so far: {seen}"
        )

    def outcome(self, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The event that ended job `job_id` (`t`: ok, fail, cancel or reject)."""
        return self.wait(job_id, *OUTCOMES, timeout=timeout)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def celeriac_app(pytestconfig: pytest.Config) -> Celery:
    """Your Celery app: `--celeriac-app`, else the `celeriac_app` ini option, else a plugin's default."""
    spec = (
        pytestconfig.getoption("celeriac_app", None)
        or pytestconfig.getini("celeriac_app")
        or pytestconfig.hook.pytest_celeriac_default_app(config=pytestconfig)
    )
    if not spec:
        pytest.fail(NO_APP, pytrace=False)
    return load_app(str(spec))


@pytest.fixture()
def celeriac_worker_parameters() -> dict[str, Any]:
    """Keyword arguments for `start_worker` over WORKER_DEFAULTS: override it, e.g.
    `return {"queues": ["emails"], "pool": "threads", "concurrency": 4}`."""
    return {}


@pytest.fixture()
def celeriac_events(celeriac_app: Celery, monkeypatch: pytest.MonkeyPatch) -> EventLog:
    """The events this process emits during the test (they still go to Redis as well)."""
    turn_tracking_on(celeriac_app)
    log = EventLog()
    buffer = signals.get_buffer()
    send, send_many = buffer.emit, buffer.emit_many

    def tee(event: dict[str, Any]) -> None:
        log.record(event)
        send(event)

    def tee_many(events: list[dict[str, Any]]) -> None:  # Celeriac's own publishes, in one go
        for event in events:
            log.record(event)
        send_many(events)

    monkeypatch.setattr(buffer, "emit", tee)
    monkeypatch.setattr(buffer, "emit_many", tee_many)
    return log


@pytest.fixture()
def celeriac_worker(celeriac_app: Celery, celeriac_worker_parameters: dict[str, Any]) -> Iterator[WorkController]:
    """A real Celery worker in a thread of the test process, tracked by Celeriac, for the test."""
    turn_tracking_on(celeriac_app)
    options = {
        **WORKER_DEFAULTS,
        "hostname": f"celeriac-pytest-{uuid.uuid4().hex[:8]}@{socket.gethostname()}",
        **celeriac_worker_parameters,
    }
    queues = celeriac_app.amqp.queues
    # A worker's queues (-Q) change the app's own selection (Queues._consume_from): put it back.
    consumed = getattr(queues, "_consume_from", None)
    try:
        with start_worker(celeriac_app, **options) as worker:
            yield worker
    finally:
        setattr(queues, "_consume_from", consumed)  # noqa: B010 - private, not in celery's stubs
        signals.get_buffer().flush()  # what it emitted is in the stream when the test ends
