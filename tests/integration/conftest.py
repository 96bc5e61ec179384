"""Real Celery worker processes and a real recorder against the test Redis and database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import ROOT, wait_for

#: Queues the session worker consumes; tests use others to hold jobs back.
WORKER_QUEUES = "high,default,low"


class WorkerProcess:
    """A `celery worker` subprocess (prefork), as `make run` starts it."""

    def __init__(
        self,
        log_path: Path,
        queues: str = WORKER_QUEUES,
        concurrency: int = 2,
        hostname: str = "test-worker@%h",
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.queues = queues
        self.hostname = hostname
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "app.celery_app",
                "worker",
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "-l",
                "info",
                "-n",
                hostname,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: b" ready." in log_path.read_bytes() or self.process.poll() is not None,
            timeout=60,
            what="worker ready",
        )
        if self.process.poll() is not None:
            raise RuntimeError("worker exited:\n" + log_path.read_text()[-3000:])
        WorkerProcess.live.append(self)

    #: The worker processes running now (a failed test's report shows their logs).
    live: ClassVar[list[WorkerProcess]] = []

    def children(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def kill(self) -> None:
        """SIGKILL the main process and its pool processes at once (a host dying)."""
        import psutil

        try:
            family = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.Error:
            family = []
        for member in family:
            try:
                member.kill()
            except psutil.Error:
                pass
        self.process.wait()
        self.log.close()
        self._forget()

    def _forget(self) -> None:
        if self in WorkerProcess.live:
            WorkerProcess.live.remove(self)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        self._forget()


@pytest.fixture(scope="session")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(tmp_path_factory.mktemp("worker") / "worker.log")
    yield proc
    proc.stop()


class RecorderThread:
    """The recorder loop in a thread of the test process (same code as `python -m app.recorder`)."""

    def __init__(self) -> None:
        from app.config import get_settings
        from app.recorder import Recorder
        from app.redis_client import get_redis

        settings = get_settings()
        self.recorder = Recorder(settings, get_redis(settings.redis_url), name="test-recorder")
        self.recorder.ensure_group()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._idle = threading.Event()
        #: Publish the recorder heartbeat and stats, as the real process does (browser tests).
        self.heartbeats = False
        #: What a failed test's report says about this thread.
        self.rounds = 0
        self.last_round_at = 0.0
        self.last_error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        RecorderThread.running.append(self)
        self.thread.start()

    #: Every recorder thread of this session (a module with a recorder process of its own
    #: pauses them: `make run` runs one recorder per event stream).
    running: ClassVar[list[RecorderThread]] = []

    @classmethod
    @contextlib.contextmanager
    def all_paused(cls) -> Iterator[None]:
        """No recorder thread reads the event stream meanwhile."""
        for thread in cls.running:
            thread._idle.clear()
            thread._paused.set()
        for thread in cls.running:
            if thread.thread.is_alive():
                wait_for(thread._idle.is_set, timeout=10, what="the recorder thread to pause")
        try:
            yield
        finally:
            for thread in cls.running:
                thread._paused.clear()

    def _run(self) -> None:
        import time

        last_stats = 0.0
        while not self._stop.is_set():
            if self._paused.is_set():
                self._idle.set()
                self._stop.wait(0.05)
                continue
            try:
                self.recorder.run_once()
            except Exception as exc:  # as a bug in the real process, reported, not silent
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(0.2)
            self.rounds += 1
            self.last_round_at = time.monotonic()
            if self.heartbeats and time.monotonic() - last_stats > 1.0:  # as Recorder.run does
                self.recorder.publish_stats()
                last_stats = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def recorder() -> Iterator[RecorderThread]:
    thread = RecorderThread()
    yield thread
    thread.stop()


@pytest.fixture()
def stack(worker: WorkerProcess, recorder: RecorderThread) -> dict[str, Any]:
    """A running worker and recorder."""
    return {"worker": worker, "recorder": recorder}


def quick_settings() -> Any:
    """Settings whose reconciler judges after a second and calls a worker dead after three."""
    import dataclasses

    from app.config import get_settings

    base = get_settings()
    return dataclasses.replace(
        base,
        reliability=dataclasses.replace(base.reliability, reconcile_grace_s=1, clock_skew_s=0),
        monitoring=dataclasses.replace(base.monitoring, offline_after_s=3, reap_after_s=3),
    )


@pytest.fixture()
def reconciler() -> Iterator[Any]:
    """The recorder's reconciler with quick settings; a recorder of its own writes what it
    finds (the session recorder runs in another thread)."""
    from app.celery_app import celery_app
    from app.db import session_scope
    from app.recorder import Recorder
    from app.recording.broker_view import Broker
    from app.recording.reconcile import Reconciler
    from app.redis_client import get_redis

    settings = quick_settings()
    client = get_redis(settings.redis_url)
    writer = Recorder(settings, client, name="test-reconciler")
    connection = celery_app.connection_for_write()
    yield Reconciler(
        settings,
        client,
        lambda: session_scope(),
        writer.write_and_follow_up,
        backend=celery_app.backend,
        broker=Broker(connection.default_channel),
    )
    connection.release()


def reconcile_until(reconciler: Any, done: Any, what: str) -> Any:
    """Run the reconciler until `done(report)` (each run sees the world as it is now)."""
    return wait_for(lambda: (report := reconciler.run_once()) and done(report) and report, timeout=30, what=what)


def wait_events_recorded(redis_client: Any) -> None:
    """Until every event on the stream so far was read and written by a recorder (nothing
    undelivered, nothing pending): a row a test then deletes or edits is not written again
    by a late event (a `pub` event makes the row of a job it does not find)."""
    from app import redis_keys

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def caught_up() -> bool:
        stream = redis_keys.EVENTS_STREAM
        newest = text(redis_client.xinfo_stream(stream)["last-generated-id"])
        groups = [{text(k): v for k, v in group.items()} for group in redis_client.xinfo_groups(stream)]
        return bool(groups) and all(
            int(group["pending"]) == 0 and text(group["last-delivered-id"]) == newest for group in groups
        )

    wait_for(caught_up, what="the recorder to write every event so far")


def wait_dealt_with(redis_client: Any, queue: str, job_id: str) -> None:
    """Until a worker took `job_id`'s message from `queue` and acknowledged it (kombu's
    `unacked` hash no longer holds it): after this, "did not run" is a real result."""
    from app.monitoring.queue_stats import broker_depth

    wait_for(lambda: broker_depth(redis_client, queue) == 0, what="the message to be taken")
    wait_for(
        lambda: not any(job_id.encode() in value for value in redis_client.hvals("unacked")),
        what="the message to be acknowledged",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A failed test that used the session's worker or recorder reports what they were doing."""
    outcome: Any = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    if not WorkerProcess.live and not RecorderThread.running:
        return
    from app.config import get_settings
    from app.redis_client import get_redis
    from tests.integration.diagnostics import report as diagnose

    text = diagnose(get_redis(get_settings().redis_url), RecorderThread.running, WorkerProcess.live)
    report.sections.append(("celeriac: the session's real parts at the failure", text))
