"""Adopting Celeriac without changing anything (docs/adopting.md, path 2: attach mode).

The same sample project as test_adopt_instrument.py (tests/sample_project: its own `app`
package, its own Celery app), with nothing of Celeriac in its environment: no wheel, no
`SAMPLE_CELERIAC`. Its own worker runs as the project starts it (no `-E`) on a queue of its
own; Celeriac's recorder runs as `CELERIAC_ATTACH=true make run` runs it, a process of its
own (the session's recorder thread pauses meanwhile: one recorder per event stream), turns
task events on in that worker by broadcast and records them. The sample's web side
(`python -m app.scenario`) dispatches the same scenario; every row is read through the API:
what events show, and, exactly, what docs/adopting.md says they cannot.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, wait_for
from tests.integration.adopt_support import (
    PLAIN_WORKER,
    SAMPLE,
    SampleWorker,
    at,
    attach_recorder,
    finished,
    job,
    run_in_sample,
    sample_env,
    waited_s,
)

pytestmark = [pytest.mark.redis, pytest.mark.worker]

#: What Celeriac's recorder tags every row it recorded from Celery's events.
ATTACHED = "celery-events"


@pytest.fixture(scope="module")
def queue() -> str:
    return f"sample-attach-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def env(queue: str) -> dict[str, str]:
    """The sample's processes as they ran before Celeriac: nothing of Celeriac on the path."""
    return sample_env(queue, None)


@pytest.fixture(scope="module")
def sample_worker(env: dict[str, str], queue: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleWorker]:
    worker = SampleWorker(env, queue, tmp_path_factory.mktemp("sample-attach") / "worker.log", PLAIN_WORKER)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def attached(sample_worker: SampleWorker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Celeriac's recorder in attach mode; the sample's worker was started without -E."""
    log_path = tmp_path_factory.mktemp("attach-recorder") / "recorder.log"
    with attach_recorder(
        log_path,
        lambda: sample_worker.wait_logged("enabled by remote", "task events turned on in the sample worker", 60),
    ):
        yield log_path


@pytest.fixture(scope="module")
def dispatched(attached: Path, env: dict[str, str], queue: str) -> dict[str, Any]:
    """What the sample's web side published, plus two jobs of the limits docs/adopting.md names:
    `waiting`, sent to a queue no worker consumes, and `long`, arguments past Celery's repr."""
    idle = f"{queue}-idle"
    extra = (
        "import json; from app.tasks import add;"
        f"print(json.dumps({{'waiting': add.apply_async((9, 9), queue={idle!r}).id,"
        " 'long': add.delay('a' * 700, 'b' * 700).id}))"
    )
    ids: dict[str, Any] = json.loads(run_in_sample(env, "-c", extra).stdout)
    # `cancel_me` waits 15 s, not 5: the cancel below must reach the worker before it starts,
    # however long the recording and the API take on a loaded machine.
    ids.update(json.loads(run_in_sample({**env, "SAMPLE_CANCEL_COUNTDOWN": "15"}, "-m", "app.scenario").stdout))
    return ids


def viewer(auth: Any) -> dict[str, str]:
    headers: dict[str, str] = auth("viewer", "default")
    return headers


def test_the_sample_runs_with_no_celeriac_in_its_environment(env: dict[str, str]) -> None:
    imported = run_in_sample(env, "-c", "import celeriac", check=False)
    assert imported.returncode == 1
    assert "ModuleNotFoundError: No module named 'celeriac'" in imported.stderr
    where = "import app, app.tasks; print(app.__file__); print(app.tasks.report_progress.__module__)"
    app_file, progress_from = run_in_sample(env, "-c", where).stdout.split()
    assert Path(app_file).is_relative_to(SAMPLE) and progress_from == "app.tasks"  # its own no-op
    assert "SAMPLE_CELERIAC" not in env and str(ROOT) not in env["PYTHONPATH"].split(os.pathsep)


def test_a_job_cancelled_while_its_countdown_runs_never_runs(
    dispatched: dict[str, Any], sample_worker: SampleWorker, client: Any, auth: Any, redis_client: Any
) -> None:
    """Cancel = revoke by id: the sample's worker, which holds it for its countdown, drops it."""
    job_id = dispatched["cancel_me"]
    held = wait_for(lambda: (row := job(client, viewer(auth), job_id))["status"] == "pending" and row, what="held")
    assert held["payload"] == {"args": [6, 6], "kwargs": {}} and held["eta"] is not None
    answer = client.post(f"/api/jobs/{job_id}/cancel", headers=auth("operator", "default"))
    assert answer.status_code == 200, answer.get_json()
    # The worker drops it when its countdown ends (the revoke only marks it meanwhile).
    sample_worker.wait_logged(f"Discarding revoked task: app.tasks.add[{job_id}]", "the revoke to be honoured", 45)
    assert f"app.tasks.add[{job_id}] succeeded" not in sample_worker.log()
    row = finished(client, viewer(auth), job_id)
    assert (row["status"], row["result"], row["attempts"], row["started_at"]) == ("cancelled", None, 0, None)
    stored = redis_client.get(f"celery-task-meta-{job_id}")
    assert stored is None or json.loads(stored)["status"] == "REVOKED"


def test_the_samples_worker_sends_nothing_of_celeriacs_own(
    dispatched: dict[str, Any], sample_worker: SampleWorker, client: Any, auth: Any, redis_client: Any
) -> None:
    """Recorded from Celery's events alone: no heartbeat of Celeriac's, so the Workers list
    (Celeriac's heartbeats) does not show it; Flower does."""
    from app import redis_keys

    finished(client, viewer(auth), dispatched["add"])
    assert redis_client.zscore(redis_keys.WORKERS, sample_worker.hostname) is None
    assert redis_client.get(f"{redis_keys.PREFIX}worker:{sample_worker.hostname}") is None
    workers = client.get("/api/admin/queue/workers", headers=viewer(auth)).get_json()["workers"]
    assert sample_worker.hostname not in {w["hostname"] for w in workers}


def test_plain_tasks_are_recorded_from_their_events(
    dispatched: dict[str, Any], sample_worker: SampleWorker, client: Any, auth: Any, queue: str
) -> None:
    headers = viewer(auth)
    row = finished(client, headers, dispatched["add"])
    assert (row["status"], row["job_class"], row["queue"], row["tenant_id"]) == (
        "completed",
        "app.tasks.add",
        queue,
        "default",
    )
    assert row["payload"] == {"args": [2, 3], "kwargs": {}} and row["result"] == 5
    assert row["worker_id"] == sample_worker.hostname and ATTACHED in row["tags"]
    assert row["execution_time_ms"] is not None and row["started_at"] is not None
    # Not in Celery's events: memory, and the retry limit (the attempts seen stand for it).
    assert row["memory_usage_mb"] is None
    assert (row["attempts"], row["max_attempts"]) == (1, 1)
    by_name = finished(client, headers, dispatched["kwargs"])
    assert by_name["payload"] == {"x": 1, "y": 2} and by_name["result"] == 3


def test_progress_and_tenants_are_not_seen(dispatched: dict[str, Any], client: Any, auth: Any) -> None:
    progress = finished(client, viewer(auth), dispatched["progress"])
    assert progress["result"] == 4
    # Never reported (path 1 records "row 4 of 4"); 100 stands for "completed".
    assert (progress["progress_done"], progress["progress_total"], progress["progress_message"]) == (None, None, None)
    # Filed under CELERIAC_DEFAULT_TENANT, whatever the message's Celeriac header says.
    tenant = finished(client, viewer(auth), dispatched["tenant"])
    assert (tenant["tenant_id"], tenant["result"]) == ("default", 10)
    assert job(client, auth("viewer", "sample-tenant"), dispatched["tenant"])["status"] == "HTTP 404"


def test_autoretry_shows_each_attempt_and_the_final_exception(
    dispatched: dict[str, Any], client: Any, auth: Any
) -> None:
    headers = viewer(auth)
    recovered = finished(client, headers, dispatched["flaky_recovers"])
    assert (recovered["status"], recovered["result"], recovered["attempts"]) == ("completed", 3, 3)
    gave_up = finished(client, headers, dispatched["flaky_gives_up"])
    assert (gave_up["status"], gave_up["attempts"], gave_up["exception_type"]) == ("failed", 4, "Flaky")
    assert gave_up["error_message"] == "Flaky: attempt 4 of 99 failed"
    assert "raise Flaky(" in gave_up["exception_trace"]
    # max_retries=3 is not in the events: the limit shown is the attempts seen (path 1: 4).
    assert (recovered["max_attempts"], gave_up["max_attempts"]) == (3, 4)


def test_group_chord_and_chain_are_recorded_without_group_membership(
    dispatched: dict[str, Any], client: Any, auth: Any
) -> None:
    headers = viewer(auth)
    members = [finished(client, headers, job_id) for job_id in dispatched["group"]["members"]]
    assert [m["result"] for m in members] == [0, 2, 4]
    header = [finished(client, headers, job_id) for job_id in dispatched["chord"]["header"]]
    callback = finished(client, headers, dispatched["chord"]["callback"])
    assert [h["result"] for h in header] == [2, 4] and callback["result"] == 6
    assert callback["job_class"] == "app.tasks.total" and callback["payload"] == {"args": [[2, 4]], "kwargs": {}}
    # Celery's events carry no group: members and the chord's header show none, and the
    # callback's parent is Celery's own, the header task that completed the chord (path 1:
    # the header's group).
    assert {m["group_id"] for m in members + header} == {None}
    assert callback["parent_id"] in dispatched["chord"]["header"]
    first = finished(client, headers, dispatched["chain"]["first"])
    second = finished(client, headers, dispatched["chain"]["second"])
    assert (first["result"], second["result"]) == (3, 30)
    assert second["payload"] == {"args": [3, 10], "kwargs": {}}
    # They do carry Celery's parent and root: a chain step names the step before it.
    assert second["parent_id"] == first["id"] and second["root_id"] == first["id"]


def test_a_countdown_shows_its_eta_and_waits(dispatched: dict[str, Any], client: Any, auth: Any) -> None:
    row = finished(client, viewer(auth), dispatched["countdown"])
    assert row["status"] == "completed" and row["result"] == 8
    # Recorded when the worker received it (at once: a worker holds a countdown itself).
    received = at(row["created_at"])
    assert abs((at(row["eta"]) - received).total_seconds() - 2) < 1
    assert at(row["started_at"]) >= at(row["eta"])


def test_published_at_is_when_the_worker_received_the_job(dispatched: dict[str, Any], client: Any, auth: Any) -> None:
    row = finished(client, viewer(auth), dispatched["countdown"])
    assert waited_s(row) >= 1.5, f"started {waited_s(row):.2f}s after it was published, its countdown is 2s"


def test_what_events_cannot_show(dispatched: dict[str, Any], client: Any, auth: Any) -> None:
    """A job waiting in a queue (no producer-side task-sent events), and arguments past Celery's
    1024-character repr."""
    headers = viewer(auth)
    cut = finished(client, headers, dispatched["long"])
    assert cut["status"] == "completed" and set(cut["payload"]) == {"args_repr", "kwargs_repr"}
    assert cut["payload"]["args_repr"].startswith("('aaaa") and cut["payload"]["args_repr"].endswith("...')")
    assert cut["payload"]["kwargs_repr"] == "{}"
    # The result too, past 1024 characters: the cut repr as it came, not the value.
    assert cut["result"].startswith("'aaaa") and cut["result"].endswith("...'")
    # Every other job of the run is recorded by now; the one still in its queue is not.
    for job_id in (dispatched["add"], dispatched["countdown"]):
        finished(client, headers, job_id)
    assert job(client, headers, dispatched["waiting"])["status"] == "HTTP 404"


def test_a_retry_from_celeriac_is_sent_by_name_and_runs_on_the_samples_worker(
    dispatched: dict[str, Any], sample_worker: SampleWorker, client: Any, auth: Any, queue: str
) -> None:
    """Last: Celeriac's publish binds the sample's queue with its own key separator."""
    cancelled = finished(client, viewer(auth), dispatched["cancel_me"])
    assert cancelled["status"] == "cancelled"
    answer = client.post(f"/api/jobs/{dispatched['cancel_me']}/retry", headers=auth("operator", "default"))
    assert answer.status_code == 202, answer.get_json()
    again = finished(client, viewer(auth), answer.get_json()["id"])
    assert (again["status"], again["result"], again["retry_of"]) == ("completed", 12, dispatched["cancel_me"])
    assert (again["job_class"], again["queue"], again["worker_id"]) == ("app.tasks.add", queue, sample_worker.hostname)
    assert ATTACHED in again["tags"]
