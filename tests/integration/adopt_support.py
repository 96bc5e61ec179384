"""What the adoption tests share (docs/adopting.md): the sample project, the `celeriac` wheel
built from this checkout and installed alone, the sample's own worker, and its rows.

tests/sample_project is run as a project runs it: its own folder as working directory, its
own package named `app` first on the path, never Celeriac's checkout. Path 1
(test_adopt_instrument.py) adds the installed wheel and `SAMPLE_CELERIAC=instrument`;
attach mode (test_adopt_attach.py) adds nothing of Celeriac at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL, ROOT, wait_for

SAMPLE = ROOT / "tests" / "sample_project"
#: Not copied to build the wheel: what a checkout holds besides its sources.
_NOT_SOURCES = (".venv", ".git", "var", "__pycache__", "*.egg-info", "build", "dist", "screenshots", ".*_cache")
#: The worker flags of the instrumented sample: Celeriac's heartbeats say what it holds.
QUIET_WORKER = ("--without-gossip", "--without-mingle", "--without-heartbeat")
#: A worker as a project starts it without -E: Celery's heartbeat on, so events can be
#: turned on by broadcast (a worker without heartbeat and gossip has no event dispatcher).
PLAIN_WORKER = ("--without-gossip", "--without-mingle")
FINAL = frozenset({"completed", "failed", "cancelled"})


@dataclasses.dataclass(frozen=True)
class Installed:
    """The wheel built from the checkout, and the folder it was pip-installed into alone."""

    wheel: Path
    site: Path


_installed: list[Installed] = []


def installed_celeriac(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build and install the wheel once per test process (both adoption modules use it)."""
    if not _installed:
        _installed.append(_build_and_install(tmp_path_factory.mktemp("wheel")))
    return _installed[0]


def _build_and_install(work: Path) -> Installed:
    # A copy of the checkout: a build leaves build/ and celeriac.egg-info in its source folder.
    checkout = work / "checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*_NOT_SOURCES))
    _pip("wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(checkout))
    (wheel,) = (work / "dist").glob("celeriac-*.whl")
    _pip("install", "-q", "--no-deps", "--target", str(work / "site"), str(wheel))
    return Installed(wheel, work / "site")


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def sample_env(queue: str, celeriac_site: Path | None, **extra: str) -> dict[str, str]:
    """The sample's processes on the session's Redis and `queue`: its own `app` on the path,
    never Celeriac's checkout; no coverage of these runs (the sample's `app` is not ours).

    `celeriac_site`: the installed wheel, put first on the path with tracking turned on
    (path 1); None: nothing of Celeriac in the environment at all (attach mode).
    """
    dropped = ("COVERAGE_", "COV_CORE_") + (() if celeriac_site else ("CELERIAC_", "SAMPLE_CELERIAC"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(SAMPLE_BROKER_URL=REDIS_URL, SAMPLE_QUEUE=queue, PYTHONPATH=str(SAMPLE), **extra)
    if celeriac_site is not None:
        env.update(PYTHONPATH=f"{celeriac_site}{os.pathsep}{SAMPLE}", SAMPLE_CELERIAC="instrument")
    return env


def run_in_sample(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`python *args` from the sample's folder, as its web side or a shell there runs it."""
    done = subprocess.run([sys.executable, *args], cwd=SAMPLE, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


class SampleWorker:
    """The sample project's own worker, `celery -A app worker`, started from its folder."""

    def __init__(self, env: dict[str, str], queue: str, log_path: Path, flags: Sequence[str] = QUIET_WORKER) -> None:
        self.hostname = f"{queue}@sample"
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "app", "worker", "-Q", queue, "-c", "2", "-l", "info"]
            + ["-n", self.hostname, *flags],
            cwd=SAMPLE,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self.wait_logged(" ready.", "the sample worker to be ready", timeout=60)
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_logged(self, text: str, what: str, timeout: float = 20) -> None:
        """Until the worker logged `text`; fails at once, with its log, if it exited."""
        try:
            wait_for(lambda: text in self.log() or self.process.poll() is not None, timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe sample worker's log ends:\n{self.log()[-3000:]}") from None
        if self.process.poll() is not None:
            raise RuntimeError("sample worker exited:\n" + self.log()[-3000:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def job(client: Any, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    """GET /api/jobs/{id}; `{"status": "HTTP 404"}` when the API does not show it."""
    answer = client.get(f"/api/jobs/{job_id}", headers=headers)
    return answer.get_json() if answer.status_code == 200 else {"status": f"HTTP {answer.status_code}"}


def finished(client: Any, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    """The job's row once it reached a final status."""
    row: dict[str, Any] = wait_for(
        lambda: (found := job(client, headers, job_id))["status"] in FINAL and found,
        timeout=60,
        what=f"job {job_id} to finish",
    )
    return row


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def waited_s(row: dict[str, Any]) -> float:
    """Seconds between the job's publish (as recorded) and its start."""
    return (at(row["started_at"]) - at(row["published_at"])).total_seconds()


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL when it has not exited 20 s later."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def attach_recorder(log_path: Path, events_on: Callable[[], None]) -> Iterator[Path]:
    """Celeriac's recorder in attach mode, as `CELERIAC_ATTACH=true make run` starts it: a
    process of its own (kombu's key separator, which the project's workers share; the
    session's app uses ':'), the session's recorder thread paused meanwhile (one recorder
    per event stream). `events_on` waits until its broadcast turned the project's events on."""
    from tests.integration.conftest import RecorderThread

    env = {**os.environ, "CELERIAC_ATTACH": "true", "CELERIAC_ATTACH_ENABLE_EVENTS_S": "2"}
    with RecorderThread.all_paused(), open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.recorder"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            events_on()
            yield log_path
        finally:
            stop_process(process)
