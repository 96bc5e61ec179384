"""Adopting Celeriac with one line (docs/adopting.md, path 1), as a project would.

A sample project with its own package named `app` and its own Celery app
(tests/sample_project) installs only the `celeriac` wheel built from this checkout, turns
on `celeriac.instrument(app)`, and runs its own worker on the session's Redis. Its web
side (`python -m app.scenario`) dispatches plain tasks, an autoretry, a group, a chord, a
chain and a countdown; the session recorder writes the rows, read here through the API.
The sample's own tests (tests/sample_project/tests) pass with Celeriac's pytest plugin.
Shared with attach mode's run of the same sample: tests/integration/adopt_support.py.
"""

from __future__ import annotations

import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.integration.adopt_support import (
    SAMPLE,
    Installed,
    SampleWorker,
    at,
    finished,
    installed_celeriac,
    job,
    run_in_sample,
    sample_env,
    waited_s,
)

pytestmark = [pytest.mark.redis, pytest.mark.worker]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return installed_celeriac(tmp_path_factory)


@pytest.fixture(scope="module")
def wheel(installed: Installed) -> Path:
    return installed.wheel


@pytest.fixture(scope="module")
def site(installed: Installed) -> Path:
    return installed.site


@pytest.fixture(scope="module")
def queue() -> str:
    return f"sample-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def env(site: Path, queue: str) -> dict[str, str]:
    """The sample's processes with the wheel installed and `celeriac.instrument` on."""
    return sample_env(queue, site, CELERIAC_WORKER_HEARTBEAT_S="1")


@pytest.fixture(scope="module")
def sample_worker(
    env: dict[str, str], queue: str, recorder: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SampleWorker]:
    worker = SampleWorker(env, queue, tmp_path_factory.mktemp("sample") / "worker.log")
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def dispatched(sample_worker: Any, env: dict[str, str], redis_client: Any) -> dict[str, Any]:
    """What the sample's web side published; `cancel_me` cancelled at once, as an operator
    would while its countdown runs (the mark only: as a worker that missed the revoke sees it)."""
    from app.backends.celery_canceller import CeleryCanceller

    ids: dict[str, Any] = json.loads(run_in_sample(env, "-m", "app.scenario").stdout)
    CeleryCanceller(redis_client, None).mark_cancelled(ids["cancel_me"])
    return ids


def test_the_wheel_installs_only_the_celeriac_package(wheel: Path, site: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {name.split("/")[0] for name in names} == {"celeriac", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "celeriac/py.typed" in names and "celeriac/instrument.py" in names
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist")]
    assert sorted(r.split(">")[0].split("=")[0].strip() for r in requires) == ["celery", "redis"]
    installed = {path.name for path in site.iterdir() if path.name != "bin"}
    assert {"app", "tasks", "ops_ui"}.isdisjoint(installed)
    assert {name for name in installed if not name.endswith(".dist-info")} == {"celeriac"}


def test_the_sample_imports_its_own_app_and_the_installed_celeriac(site: Path, env: dict[str, str]) -> None:
    where = "import json, app, celeriac; print(json.dumps([app.__file__, celeriac.__file__]))"
    printed = run_in_sample(env, "-c", where).stdout
    app_file, celeriac_file = json.loads(printed)
    assert Path(app_file).is_relative_to(SAMPLE)
    assert Path(celeriac_file).is_relative_to(site)


def test_the_samples_own_tests_pass_with_celeriacs_pytest_plugin(site: Path, queue: str) -> None:
    """docs/testing.md as the sample follows it: its tests (tests/sample_project/tests) run by
    pytest from its folder, with only the installed wheel added to the path (its pytest.ini
    names the app and loads `celeriac.pytest_plugin`), on an in-thread worker of their own queue."""
    env = sample_env(f"{queue}-tests", site, PYTHONDONTWRITEBYTECODE="1")
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_")} | {"PYTHONPATH": str(site)}
    done = run_in_sample(env, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "error::pytest.PytestWarning")
    summary = done.stdout.strip().splitlines()[-1]
    tests = (SAMPLE / "tests" / "test_tasks.py").read_text().count("\ndef test_")
    assert tests >= 8 and summary.startswith(f"{tests} passed"), done.stdout[-3000:]
    assert "skipped" not in summary and "xfail" not in summary


def test_plain_tasks_are_recorded_in_full(dispatched: dict[str, Any], client: Any, auth: Any, queue: str) -> None:
    headers = auth("viewer", "default")
    row = finished(client, headers, dispatched["add"])
    assert (row["status"], row["job_class"], row["queue"], row["tenant_id"]) == (
        "completed",
        "app.tasks.add",
        queue,
        "default",
    )
    assert row["payload"] == {"args": [2, 3], "kwargs": {}} and row["result"] == 5
    # Celery's default max_retries is 3: a plain task may run four times.
    assert (row["attempts"], row["max_attempts"]) == (1, 4)
    assert row["memory_usage_mb"] is not None and row["execution_time_ms"] is not None
    assert row["worker_id"].startswith(queue + "@")
    by_name = finished(client, headers, dispatched["kwargs"])
    assert by_name["payload"] == {"x": 1, "y": 2} and by_name["result"] == 3
    progress = finished(client, headers, dispatched["progress"])
    assert (progress["progress"], progress["progress_message"], progress["result"]) == (100, "row 4 of 4", 4)


def test_a_tenant_header_files_the_job_under_its_tenant(dispatched: dict[str, Any], client: Any, auth: Any) -> None:
    row = finished(client, auth("viewer", "sample-tenant"), dispatched["tenant"])
    assert row["tenant_id"] == "sample-tenant" and row["result"] == 10
    assert job(client, auth("viewer", "default"), dispatched["tenant"])["status"] == "HTTP 404"


def test_autoretry_counts_attempts_against_max_retries_plus_one(
    dispatched: dict[str, Any], client: Any, auth: Any
) -> None:
    headers = auth("viewer", "default")
    recovered = finished(client, headers, dispatched["flaky_recovers"])
    assert (recovered["status"], recovered["result"], recovered["attempts"]) == ("completed", 3, 3)
    gave_up = finished(client, headers, dispatched["flaky_gives_up"])
    assert (gave_up["status"], gave_up["attempts"], gave_up["exception_type"]) == ("failed", 4, "Flaky")
    assert "attempt 4 of 99 failed" in gave_up["error_message"]
    # max_retries=3: four attempts in all (helper "canvas" records the limit of plain retries).
    assert recovered["max_attempts"] == 4
    assert gave_up["max_attempts"] == 4


def test_group_chord_and_chain_are_recorded_with_their_relations(
    dispatched: dict[str, Any], client: Any, auth: Any
) -> None:
    headers = auth("viewer", "default")
    members = [finished(client, headers, job_id) for job_id in dispatched["group"]["members"]]
    assert [m["result"] for m in members] == [0, 2, 4]
    assert {m["group_id"] for m in members} == {dispatched["group"]["id"]}
    header = [finished(client, headers, job_id) for job_id in dispatched["chord"]["header"]]
    callback = finished(client, headers, dispatched["chord"]["callback"])
    assert [h["result"] for h in header] == [2, 4] and callback["result"] == 6
    assert callback["job_class"] == "app.tasks.total" and callback["payload"] == {"args": [[2, 4]], "kwargs": {}}
    assert {h["group_id"] for h in header} == {dispatched["chord"]["group"]}
    first = finished(client, headers, dispatched["chain"]["first"])
    second = finished(client, headers, dispatched["chain"]["second"])
    assert (first["result"], second["result"]) == (3, 30)
    assert second["payload"] == {"args": [3, 10], "kwargs": {}}
    # GET /api/jobs/{id} names the parent (helper "canvas" adds parent_id / root_id).
    assert second["parent_id"] == first["id"] and second["root_id"] == first["id"]


def test_a_countdown_waits_before_it_runs(dispatched: dict[str, Any], client: Any, auth: Any) -> None:
    row = finished(client, auth("viewer", "default"), dispatched["countdown"])
    assert row["status"] == "completed" and row["result"] == 8
    assert row["eta"] is not None
    waited = waited_s(row)
    assert waited >= 1.5, f"started {waited:.2f}s after it was published, its countdown is 2s"
    assert abs((at(row["eta"]) - at(row["published_at"])).total_seconds() - 2) < 1


def test_a_job_cancelled_before_it_starts_never_runs(
    dispatched: dict[str, Any], client: Any, auth: Any, redis_client: Any
) -> None:
    row = finished(client, auth("viewer", "default"), dispatched["cancel_me"])
    assert (row["status"], row["result"], row["attempts"]) == ("cancelled", None, 0)
    # The plain task's body never ran: it stored no result.
    assert redis_client.get(f"celery-task-meta-{dispatched['cancel_me']}") is None


def test_a_retry_from_celeriac_runs_on_the_projects_worker(dispatched: dict[str, Any], client: Any, auth: Any) -> None:
    row = finished(client, auth("viewer", "default"), dispatched["cancel_me"])
    answer = client.post(f"/api/jobs/{dispatched['cancel_me']}/retry", headers=auth("operator", "default"))
    assert answer.status_code == 202, answer.get_json()
    again = finished(client, auth("viewer", "default"), answer.get_json()["id"])
    assert (again["status"], again["result"], again["retry_of"]) == ("completed", 12, dispatched["cancel_me"])
    assert again["job_class"] == "app.tasks.add" and again["worker_id"].startswith(row["queue"] + "@")


def test_the_sample_worker_shows_in_the_workers_list(sample_worker: Any, client: Any, auth: Any, queue: str) -> None:
    def listed() -> dict[str, Any] | None:
        workers = client.get("/api/admin/queue/workers", headers=auth("viewer", "default")).get_json()["workers"]
        return next((w for w in workers if w["hostname"] == sample_worker.hostname), None)

    found = wait_for(listed, timeout=15, what="the sample worker's heartbeat")
    assert found["status"] == "online" and found["queues"] == [queue]


def test_the_reconciler_leaves_alone_a_job_the_projects_worker_holds(
    sample_worker: Any, env: dict[str, str], reconciler: Any, client: Any, auth: Any, redis_client: Any
) -> None:
    """A countdown waits in the worker, unacknowledged; only the heartbeat says whose it is."""
    headers = auth("viewer", "default")
    later = "from app.tasks import add; print(add.apply_async((7, 7), countdown=4).id)"
    job_id = run_in_sample(env, "-c", later).stdout.strip()

    def held() -> list[str]:
        beat = redis_client.get(f"celeriac:worker:{sample_worker.hostname}")
        return list(json.loads(beat)["held"]) if beat else []

    wait_for(lambda: job_id in held(), what="the sample worker's heartbeat to hold the job")
    published = at(wait_for(lambda: job(client, headers, job_id).get("published_at"), what="the publish"))
    # Past the reconciler's grace (1 s here): without the heartbeat it would be an orphan.
    wait_for(lambda: time.time() - published.timestamp() > 1.5, what="the grace to pass")
    reconciler.run_once()
    assert job(client, headers, job_id)["notes"] == []
    row = finished(client, headers, job_id)
    assert (row["status"], row["result"], row["attempts"], row["notes"]) == ("completed", 14, 1, [])
