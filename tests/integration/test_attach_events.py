"""Attach mode (docs/adopting.md, path 2): a project's unchanged Celery workers, recorded
from Celery's task events, with retry and cancel working from Celeriac's API.

The project (tests/attach_project) is plain Celery: its own app, no Celeriac import, its
worker started without `-E` on a queue of its own. Celeriac's recorder runs as `make run`
runs it with CELERIAC_ATTACH=true (a process of its own; the session's recorder thread
pauses meanwhile: one recorder per event stream) and turns events on in that worker by
broadcast; the rows it writes are read here through the API.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL, ROOT, wait_for
from tests.integration.adopt_support import attach_recorder, stop_process

pytestmark = [pytest.mark.redis, pytest.mark.worker]


@dataclasses.dataclass
class ForeignWorker:
    process: subprocess.Popen[bytes]
    log_path: Path
    queue: str
    hostname: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def foreign_env(queue: str) -> dict[str, str]:
    return {**os.environ, "FOREIGN_BROKER_URL": REDIS_URL, "FOREIGN_QUEUE": queue}


@pytest.fixture(scope="module")
def foreign_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForeignWorker]:
    """The project's worker, as the project starts it: no `-E`, its own queue."""
    import uuid

    unique = uuid.uuid4().hex[:10]
    queue, hostname = f"attach-{unique}", f"foreign-{unique}@localhost"
    log_path = tmp_path_factory.mktemp("foreign") / "worker.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.attach_project.foreign", "worker", "-P", "solo",
             "-Q", queue, "-n", hostname, "-l", "info", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=foreign_env(queue), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    worker = ForeignWorker(process, log_path, queue, hostname)
    try:
        wait_for(lambda: " ready." in worker.log() or process.poll() is not None, timeout=60, what="foreign worker")
        assert process.poll() is None, worker.log()[-3000:]
        yield worker
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def attached(foreign_worker: ForeignWorker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Celeriac's recorder in attach mode; the project's worker was started without -E."""
    log_path = tmp_path_factory.mktemp("attach") / "recorder.log"

    def events_on() -> None:
        wait_for(lambda: "enabled by remote" in foreign_worker.log(), timeout=60, what="events enabled")

    with attach_recorder(log_path, events_on):
        yield log_path


def produce(queue: str) -> dict[str, str]:
    """The project sends its tasks as it always has (a process of its own, no Celeriac hook)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.attach_project.produce"],
        cwd=ROOT, env=foreign_env(queue), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ids: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return ids


def test_unchanged_workers_are_recorded_and_retried_and_cancelled_by_name(
    foreign_worker: ForeignWorker, attached: Path, client: Any, auth: Any, settings: Any
) -> None:
    headers = auth("operator", settings.default_tenant)

    def job(job_id: str) -> dict[str, Any] | None:
        response = client.get(f"/api/jobs/{job_id}", headers=headers)
        return response.get_json() if response.status_code == 200 else None

    def when(job_id: str, *statuses: str) -> dict[str, Any]:
        found: dict[str, Any] = wait_for(
            lambda: (row := job(job_id)) is not None and row["status"] in statuses and row,
            timeout=30,
            what=f"job {job_id} {'/'.join(statuses)}",
        )
        return found

    ids = produce(foreign_worker.queue)

    # Cancel = revoke by id: the worker holding it for its countdown drops it.
    held = when(ids["later"], "pending")
    assert held["payload"] == {"args": [1, 1], "kwargs": {}} and held["queue"] == foreign_worker.queue
    cancelled = client.post(f"/api/jobs/{ids['later']}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.get_json()
    wait_for(lambda: f"Discarding revoked task: foreign.add[{ids['later']}]" in foreign_worker.log(), what="revoke")
    assert job(ids["later"])["status"] == "cancelled"  # type: ignore[index]

    done = when(ids["add"], "completed")
    assert (done["result"], done["payload"], done["queue"]) == (5, {"args": [2, 3], "kwargs": {}}, foreign_worker.queue)
    assert done["worker_id"] == foreign_worker.hostname and "celery-events" in done["tags"]

    failed = when(ids["fail"], "failed")
    assert (failed["error_message"], failed["exception_type"]) == ("ValueError: boom", "ValueError")
    assert "raise ValueError(message)" in failed["exception_trace"]

    retried = when(ids["retrying"], "completed")
    assert (retried["result"], retried["attempts"]) == (2, 3)

    # Retry from the API: sent again by name to the project's queue, and its worker runs it.
    answer = client.post(f"/api/jobs/{ids['fail']}/retry", headers=headers)
    assert answer.status_code == 202, answer.get_json()
    again = when(answer.get_json()["id"], "failed")
    assert (again["retry_of"], again["job_class"], again["queue"]) == (
        ids["fail"],
        "foreign.fail",
        foreign_worker.queue,
    )
    assert (again["error_message"], again["worker_id"]) == ("ValueError: boom", foreign_worker.hostname)

    # Arguments Celery's events carried cut: shown as they came, and a retry says why not.
    cut = when(ids["long_fail"], "failed")
    assert cut["payload"]["args_repr"].startswith("('xxxx") and cut["payload"]["args_repr"].endswith("...',)")
    refused = client.post(f"/api/jobs/{ids['long_fail']}/retry", headers=headers)
    assert refused.status_code == 409
    assert "edited payload" in refused.get_json()["detail"]


def test_celeriacs_worker_in_attach_mode_consumes_only_its_own_queue() -> None:
    """What `CELERIAC_ATTACH=true make run` starts: the worker's -Q, Celeriac's own jobs' queue."""
    import shlex

    from app.config import load_settings
    from scripts.run import PROCFILE, child_environ

    settings = load_settings({"CELERIAC_ATTACH": "true"})
    environ = child_environ({"PATH": os.defpath}, REDIS_URL, settings)
    (worker,) = [line for line in PROCFILE.read_text().splitlines() if line.startswith("worker:")]
    expanded = subprocess.run(
        ["/bin/sh", "-c", f"printf '%s\\n' {worker.partition(':')[2]}"],
        env=environ, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert expanded[expanded.index("-Q") + 1] == "celeriac"
    assert settings.attach.system_queue == "celeriac"
    assert shlex.split(worker)[0] == "worker:"
    plain = load_settings({})
    assert plain.attach.queues == ("high", "default", "low") and "CELERIAC_WORKER_QUEUES" not in child_environ(
        {"PATH": os.defpath}, REDIS_URL, plain
    )


def test_the_reconciler_leaves_rows_recorded_from_events_alone(reconciler: Any, unique: str) -> None:
    """A job seen running through events, whose outcome event was missed, is not "lost": the
    same row without the tag (a job Celeriac should know everything about) is judged."""
    from datetime import UTC, datetime, timedelta

    from app.db import session_scope
    from app.models import JobExecution

    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    watched, own = f"attached-{unique}", f"own-{unique}"
    with session_scope() as session:
        for job_id, tags in ((watched, ["celery-events"]), (own, None)):
            session.add(
                JobExecution(
                    id=job_id, job_class="foreign.add", queue=f"attach-{unique}", status="processing",
                    status_ts=long_ago.timestamp(), attempts=1, tags=tags, created_at=long_ago, updated_at=long_ago,
                )
            )  # fmt: skip
    reconciler.run_once()
    with session_scope() as session:
        assert session.get(JobExecution, own).status == "failed"  # type: ignore[union-attr]
        assert session.get(JobExecution, watched).status == "processing"  # type: ignore[union-attr]
