"""Batches, chains, dependencies, unique jobs and deadlines (J4-J8) with a real worker and recorder."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def job(job_class: str, **payload: Any) -> dict[str, Any]:
    return {"job_class": job_class, "payload": payload}


def marker(key: str, seconds: float = 0) -> dict[str, Any]:
    return job("tests.marker", key=key, seconds=seconds)


def runs(redis_client: Any, key: str) -> int:
    return int(redis_client.get(f"tests:marker:{key}:runs") or 0)


def get_job(client: Any, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def wait_status(
    client: Any, headers: dict[str, str], job_id: str, *statuses: str, timeout: float = 40
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        response = client.get(f"/api/jobs/{job_id}", headers=headers)
        if response.status_code == 404:
            return None  # a released job's row is written by the recorder a moment later
        body: dict[str, Any] = response.get_json()
        seen.update(status=body["status"], worker=body.get("worker"), attempts=body.get("attempts"))
        return body if body["status"] in statuses else None

    try:
        return wait_for(reached, timeout=timeout, what=f"job {job_id} to be {statuses}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {seen or 'no row'}{database_waits()}") from None


def database_waits() -> str:
    """On PostgreSQL, the sessions of the test database not idle: a writer blocked on a lock
    would explain a job never recorded (CI timed out here twice, never locally)."""
    from sqlalchemy import text

    from app.db import session_scope
    from tests.conftest import DATABASE_URL

    if not DATABASE_URL.startswith("postgresql"):
        return ""
    with session_scope() as session:
        rows = session.execute(
            text(
                "SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS age, left(query, 160)"
                " FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle'"
                " AND pid <> pg_backend_pid()"
            )
        ).all()
    return "\nPostgreSQL sessions not idle:\n" + "\n".join(str(tuple(row)) for row in rows)


def wait_group(client: Any, headers: dict[str, str], path: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(path, headers=headers).get_json()
        return body if body["status"] in statuses else None

    return wait_for(reached, timeout=timeout, what=f"{path} to be {statuses}")


# -- batches (J5) -----------------------------------------------------------------------
def test_batch_runs_then_and_finally_once_and_reports_progress(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    headers = auth("operator")
    body = {
        "name": "Import",
        "jobs": [job("demo.echo", value=i) for i in range(5)],
        "then": marker(f"{unique}-then"),
        "catch": marker(f"{unique}-catch"),
        "finally": marker(f"{unique}-finally"),
    }
    response = client.post("/api/batches", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["total_jobs"] == 5 and len(created["job_ids"]) == 5
    batch = wait_group(client, headers, f"/api/batches/{created['id']}", "finished")
    assert batch["processed_jobs"] == 5 and batch["pending_jobs"] == 0 and batch["failed_jobs"] == 0
    assert batch["progress"] == 100 and batch["name"] == "Import" and batch["finished_at"]
    wait_for(lambda: runs(redis_client, f"{unique}-finally") == 1, timeout=30, what="finally ran")
    wait_for(lambda: runs(redis_client, f"{unique}-then") == 1, timeout=30, what="then ran")
    then = wait_status(client, headers, batch["then_job_id"], "completed")
    assert then["job_class"] == "tests.marker"
    assert runs(redis_client, f"{unique}-catch") == 0
    assert client.get(f"/api/jobs/{batch['catch_job_id']}", headers=headers).status_code == 404


def test_batch_failure_beyond_allowance_runs_catch_not_then(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    headers = auth("operator")
    body = {
        "jobs": [job("demo.fail", message="one"), job("demo.fail", message="two"), job("demo.echo", value=1)],
        "allow_failures": 1,
        "then": marker(f"{unique}-then"),
        "catch": marker(f"{unique}-catch"),
        "finally": marker(f"{unique}-finally"),
    }
    created = client.post("/api/batches", json=body, headers=headers).get_json()
    batch = wait_group(client, headers, f"/api/batches/{created['id']}", "failed")
    assert batch["failed_jobs"] == 2 and batch["processed_jobs"] == 3
    wait_for(lambda: runs(redis_client, f"{unique}-finally") == 1, timeout=30, what="finally ran")
    wait_for(lambda: runs(redis_client, f"{unique}-catch") == 1, timeout=30, what="catch ran")
    assert runs(redis_client, f"{unique}-then") == 0


def test_failures_within_allowance_still_run_then(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    headers = auth("operator")
    body = {
        "jobs": [job("demo.fail", message="x"), job("demo.echo", value=1)],
        "allow_failures": 1,
        "then": marker(unique),
    }
    created = client.post("/api/batches", json=body, headers=headers).get_json()
    batch = wait_group(client, headers, f"/api/batches/{created['id']}", "finished", "failed")
    assert batch["status"] == "finished" and batch["failed_jobs"] == 1
    wait_for(lambda: runs(redis_client, unique) == 1, timeout=30, what="then ran")


def test_jobs_added_to_a_running_batch_are_waited_for(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    headers = auth("operator")
    body = {"jobs": [job("demo.sleep", seconds=1.5)], "finally": marker(unique)}
    created = client.post("/api/batches", json=body, headers=headers).get_json()
    added = client.post(
        f"/api/batches/{created['id']}/jobs", json={"jobs": [job("demo.echo", value=2)]}, headers=headers
    )
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["total_jobs"] == 2
    batch = wait_group(client, headers, f"/api/batches/{created['id']}", "finished")
    assert batch["total_jobs"] == 2 and batch["processed_jobs"] == 2
    wait_for(lambda: runs(redis_client, unique) == 1, timeout=30, what="finally ran")
    late = client.post(f"/api/batches/{created['id']}/jobs", json={"jobs": [job("demo.echo")]}, headers=headers)
    assert late.status_code == 409


def test_cancelling_a_batch_cancels_its_pending_jobs_and_runs_finally(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    headers = auth("operator")
    # Queue "parked" has no worker: the jobs stay pending until cancelled.
    parked = {"queue": "parked"}
    body = {
        "jobs": [{**job("demo.echo", value=i), "options": parked} for i in range(3)],
        "then": marker(f"{unique}-then"),
        "finally": marker(f"{unique}-finally"),
    }
    created = client.post("/api/batches", json=body, headers=headers).get_json()
    response = client.post(f"/api/batches/{created['id']}/cancel", headers=headers)
    assert response.status_code == 200 and response.get_json()["cancelled_jobs"] == 3
    batch = wait_group(client, headers, f"/api/batches/{created['id']}", "cancelled")
    for job_id in created["job_ids"]:
        assert get_job(client, headers, job_id)["status"] == "cancelled"
    wait_for(lambda: runs(redis_client, f"{unique}-finally") == 1, timeout=30, what="finally ran")
    assert runs(redis_client, f"{unique}-then") == 0
    assert batch["status"] == "cancelled"
    assert client.post(f"/api/batches/{created['id']}/cancel", headers=headers).status_code == 409


def test_batch_callbacks_run_once_when_two_workers_finish_together(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any, tmp_path: Any
) -> None:
    from tests.integration.conftest import WorkerProcess

    second = WorkerProcess(tmp_path / "second.log", hostname=f"second-{unique}@%h")
    try:
        headers = auth("operator")
        for round_ in range(3):
            key = f"{unique}-{round_}"
            body = {
                "jobs": [job("demo.sleep", seconds=0.3) for _ in range(8)],
                "then": marker(f"{key}-then"),
                "finally": marker(f"{key}-finally"),
            }
            created = client.post("/api/batches", json=body, headers=headers).get_json()
            wait_group(client, headers, f"/api/batches/{created['id']}", "finished")
            wait_for(lambda k=key: runs(redis_client, f"{k}-finally") >= 1, timeout=30, what="finally ran")
            wait_for(lambda k=key: runs(redis_client, f"{k}-then") >= 1, timeout=30, what="then ran")
            workers = {get_job(client, headers, i)["worker_id"] for i in created["job_ids"]}
            assert len(workers) == 2, workers  # both workers took part
        # Give a duplicate the time a recorder round takes, then check nothing ran twice.
        wait_for(lambda: redis_client.llen("celeriac:outbox") == 0, timeout=10, what="outbox empty")
        for round_ in range(3):
            key = f"{unique}-{round_}"
            assert runs(redis_client, f"{key}-then") == 1
            assert runs(redis_client, f"{key}-finally") == 1
    finally:
        second.stop()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"jobs": []}, 422),
        ({"jobs": [job("no.such.job")]}, 422),
        ({"jobs": [job("demo.echo"), job("no.such.job")]}, 422),
        ({"jobs": [job("demo.echo")], "then": job("no.such.job")}, 422),
        ({"jobs": [job("demo.echo")], "allow_failures": -1}, 422),
        ({"jobs": "demo.echo"}, 400),
        ({"jobs": ["demo.echo"]}, 400),
    ],
)
def test_bad_batches_are_refused_and_queue_nothing(
    stack: Any, client: Any, auth: Any, redis_client: Any, body: dict[str, Any], status: int
) -> None:
    before = redis_client.llen("default")
    response = client.post("/api/batches", json=body, headers=auth("operator"))
    assert response.status_code == status, response.get_json()
    assert response.content_type == "application/problem+json"
    assert redis_client.llen("default") == before


# -- chains (J6) ----------------------------------------------------------------------
def test_chain_passes_each_result_to_the_next_step(stack: Any, client: Any, auth: Any) -> None:
    headers = auth("operator")
    body = {"name": "pipeline", "jobs": [job("demo.echo", value=7), job("demo.echo"), job("demo.add", x=1, y=2)]}
    body["jobs"][2] = job("demo.echo")
    response = client.post("/api/chains", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    waiting = get_job(client, headers, created["job_ids"][2])
    assert waiting["status"] == "pending" and waiting["depends_on"] == [created["job_ids"][1]]
    chain = wait_group(client, headers, f"/api/chains/{created['id']}", "finished")
    assert chain["current_step"] == 3 and chain["total_steps"] == 3 and chain["progress"] == 100
    assert [get_job(client, headers, i)["result"] for i in created["job_ids"]] == [7, 7, 7]


def test_failing_step_stops_the_chain_runs_catch_and_cancels_the_rest(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    headers = auth("operator")
    body = {
        "jobs": [job("demo.echo", value=1), job("demo.fail", message="step two"), job("demo.echo"), job("demo.echo")],
        "catch": marker(unique),
    }
    created = client.post("/api/chains", json=body, headers=headers).get_json()
    chain = wait_group(client, headers, f"/api/chains/{created['id']}", "failed")
    assert chain["current_step"] == 2
    for job_id in created["job_ids"][2:]:
        cancelled = wait_status(client, headers, job_id, "cancelled")
        assert "chain stopped" in cancelled["error_message"]
    wait_for(lambda: runs(redis_client, unique) == 1, timeout=30, what="catch ran")


# -- dependencies (J7) ------------------------------------------------------------------
def dispatch(client: Any, headers: dict[str, str], job_class: str, payload: dict[str, Any], **options: Any) -> Any:
    return client.post(
        "/api/jobs/dispatch", json={"job_class": job_class, "payload": payload, "options": options}, headers=headers
    )


def test_dependant_waits_until_its_dependencies_completed(stack: Any, client: Any, auth: Any) -> None:
    headers = auth("operator")
    first = dispatch(client, headers, "demo.sleep", {"seconds": 1.0}).get_json()["id"]
    second = dispatch(client, headers, "demo.echo", {"value": 2}).get_json()["id"]
    response = dispatch(client, headers, "demo.echo", {"value": "after"}, depends_on=[first, second])
    assert response.status_code == 201, response.get_json()
    dependant = response.get_json()["id"]
    waiting = get_job(client, headers, dependant)
    assert waiting["status"] == "pending" and waiting["depends_on"] == [first, second]
    done = wait_status(client, headers, dependant, "completed", "cancelled", "failed")
    assert done["status"] == "completed" and done["result"] == "after"
    first_done = get_job(client, headers, first)
    assert done["started_at"] >= first_done["completed_at"]


def test_dependency_already_completed_releases_at_once(stack: Any, client: Any, auth: Any) -> None:
    headers = auth("operator")
    first = dispatch(client, headers, "demo.echo", {"value": 1}).get_json()["id"]
    wait_status(client, headers, first, "completed")
    dependant = dispatch(client, headers, "demo.echo", {"value": 2}, depends_on=[first]).get_json()["id"]
    assert wait_status(client, headers, dependant, "completed", "cancelled")["status"] == "completed"


def test_failed_dependency_cancels_the_dependant_with_a_reason(stack: Any, client: Any, auth: Any) -> None:
    headers = auth("operator")
    failing = dispatch(client, headers, "demo.fail", {"message": "nope"}).get_json()["id"]
    dependant = dispatch(client, headers, "demo.echo", {}, depends_on=[failing]).get_json()["id"]
    grandchild = dispatch(client, headers, "demo.echo", {}, depends_on=[dependant]).get_json()["id"]
    cancelled = wait_status(client, headers, dependant, "cancelled", "completed")
    assert cancelled["status"] == "cancelled" and failing in cancelled["error_message"]
    assert wait_status(client, headers, grandchild, "cancelled", "completed")["status"] == "cancelled"


def test_cancelling_a_waiting_job_means_it_never_runs(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    headers = auth("operator")
    blocker = dispatch(client, headers, "demo.sleep", {"seconds": 1.0}).get_json()["id"]
    waiting = dispatch(client, headers, "tests.marker", {"key": unique}, depends_on=[blocker]).get_json()["id"]
    assert client.post(f"/api/jobs/{waiting}/cancel", headers=headers).status_code == 200
    wait_status(client, headers, blocker, "completed")
    wait_for(lambda: redis_client.llen("celeriac:outbox") == 0, timeout=10, what="outbox drained")
    assert get_job(client, headers, waiting)["status"] == "cancelled"
    assert runs(redis_client, unique) == 0


def test_unknown_foreign_and_self_dependencies_are_refused(
    stack: Any, client: Any, auth: Any, redis_client: Any
) -> None:
    other = dispatch(client, auth("operator", tenant="other"), "demo.echo", {}).get_json()["id"]
    headers = auth("operator")
    before = redis_client.llen("default")
    for deps in (["00000000-0000-0000-0000-000000000000"], [other]):
        response = dispatch(client, headers, "demo.echo", {}, depends_on=deps)
        assert response.status_code == 422, response.get_json()
        assert "unknown" in response.get_json()["detail"]
    assert dispatch(client, headers, "demo.echo", {}, depends_on="x").status_code == 422
    assert redis_client.llen("default") == before


# -- unique jobs (J8) -------------------------------------------------------------------
def test_duplicate_of_a_live_unique_job_returns_its_id(
    stack: Any, client: Any, auth: Any, redis_client: Any, unique: str
) -> None:
    headers = auth("operator")
    payload = {"seconds": 1.0}
    first = dispatch(client, headers, "demo.sleep", payload, unique_for=60)
    assert first.status_code == 201
    before = redis_client.llen("default")
    twin = dispatch(client, headers, "demo.sleep", payload, unique_for=60)
    assert twin.status_code == 200 and twin.get_json()["id"] == first.get_json()["id"]
    assert redis_client.llen("default") == before
    other_payload = dispatch(client, headers, "demo.sleep", {"seconds": 0.1}, unique_for=60)
    assert other_payload.status_code == 201
    wait_status(client, headers, first.get_json()["id"], "completed")
    # The lock is freed when the job finishes: the same dispatch queues a new job.
    keyed = dispatch(client, headers, "demo.echo", {"value": 1}, unique_for=60, unique_id=unique)
    assert keyed.status_code == 201
    wait_status(client, headers, keyed.get_json()["id"], "completed")

    def dispatch_again() -> Any:
        response = dispatch(client, headers, "demo.echo", {"value": 2}, unique_for=60, unique_id=unique)
        return response if response.status_code == 201 else None

    fresh = wait_for(dispatch_again, timeout=20, what="lock freed after completion")
    assert fresh.get_json()["id"] != keyed.get_json()["id"]


# -- deadlines and priorities (J4) ------------------------------------------------------
def test_expired_job_is_not_run_and_is_cancelled_with_the_reason(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any, tmp_path: Any
) -> None:
    from tests.integration.conftest import WorkerProcess

    headers = auth("operator")
    queue = f"solo-{unique}"
    blocker = dispatch(client, headers, "demo.sleep", {"seconds": 2.5}, queue=queue).get_json()["id"]
    late = dispatch(client, headers, "tests.marker", {"key": unique}, queue=queue, expires=1).get_json()["id"]
    solo = WorkerProcess(tmp_path / "solo.log", queues=queue, concurrency=1, hostname=f"solo-{unique}@%h")
    try:
        wait_status(client, headers, blocker, "completed")
        expired = wait_status(client, headers, late, "cancelled", "completed")
        assert expired["status"] == "cancelled" and "expired" in expired["error_message"]
        assert runs(redis_client, unique) == 0
    finally:
        solo.stop()


def test_higher_priority_overtakes_queued_lower_ones(
    stack: Any, client: Any, auth: Any, unique: str, tmp_path: Any
) -> None:
    from tests.integration.conftest import WorkerProcess

    headers = auth("operator")
    queue = f"prio-{unique}"
    dispatch(client, headers, "demo.sleep", {"seconds": 1.0}, queue=queue, priority=5)
    low = [
        dispatch(client, headers, "demo.echo", {"value": i}, queue=queue, priority=1).get_json()["id"] for i in range(4)
    ]
    high = dispatch(client, headers, "demo.echo", {"value": "vip"}, queue=queue, priority=9).get_json()["id"]
    solo = WorkerProcess(tmp_path / "prio.log", queues=queue, concurrency=1, hostname=f"prio-{unique}@%h")
    try:
        try:
            finished = [wait_status(client, headers, i, "completed") for i in [*low, high]]
        except AssertionError as exc:
            log_tail = (tmp_path / "prio.log").read_text()[-4000:]
            raise AssertionError(f"{exc}\nworker log:\n{log_tail}") from None
        vip = finished[-1]
        assert all(vip["started_at"] < other["started_at"] for other in finished[:-1])
    finally:
        solo.stop()


# -- the same from code -----------------------------------------------------------------
def test_batch_chain_and_dependencies_from_code(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    from app.jobs import batch, chain
    from tasks.demo import Echo, Sleep
    from tests.sample_jobs import MarkerJob

    headers = auth("viewer")
    made = (
        batch([Echo(value=1), Echo.on_queue("default").make(value=2)])
        .name("from code")
        .then(MarkerJob(key=f"{unique}-then"))
        .finally_(MarkerJob(key=f"{unique}-finally"))
        .for_tenant("acme")
        .dispatch()
    )
    assert len(made.job_ids) == 2
    finished = wait_group(client, headers, f"/api/batches/{made.id}", "finished")
    assert finished["name"] == "from code"
    wait_for(lambda: runs(redis_client, f"{unique}-then") == 1, timeout=30, what="then ran")

    steps = chain([Echo(value="x"), Echo(), Echo()]).for_tenant("acme").dispatch()
    wait_group(client, headers, f"/api/chains/{steps.id}", "finished")
    assert get_job(client, headers, steps.job_ids[-1])["result"] == "x"

    first = Sleep.for_tenant("acme").dispatch(seconds=0.5)
    after = Echo.for_tenant("acme").after(first).dispatch(value="then")
    assert wait_status(client, headers, after, "completed", "cancelled")["result"] == "then"


def test_bad_chain_is_refused_and_queues_nothing(stack: Any, client: Any, auth: Any, redis_client: Any) -> None:
    headers = auth("operator")
    before = redis_client.llen("default")
    for body in (
        {"jobs": []},
        {"jobs": [job("demo.echo"), job("nope")]},
        {"jobs": [job("demo.echo")], "catch": job("nope")},
    ):
        response = client.post("/api/chains", json=body, headers=headers)
        assert response.status_code == 422, response.get_json()
    assert redis_client.llen("default") == before
    assert client.get("/api/chains/unknown", headers=headers).status_code == 404
    assert client.get("/api/batches/unknown", headers=headers).status_code == 404


def test_other_tenants_cannot_see_or_touch_a_batch(stack: Any, client: Any, auth: Any) -> None:
    created = client.post(
        "/api/batches", json={"jobs": [{**job("demo.echo"), "options": {"queue": "parked"}}]}, headers=auth("operator")
    ).get_json()
    stranger = auth("operator", tenant="other")
    assert client.get(f"/api/batches/{created['id']}", headers=stranger).status_code == 404
    assert client.post(f"/api/batches/{created['id']}/cancel", headers=stranger).status_code == 404
    add = client.post(f"/api/batches/{created['id']}/jobs", json={"jobs": [job("demo.echo")]}, headers=stranger)
    assert add.status_code == 404
    assert client.post("/api/batches", json={"jobs": [job("demo.echo")]}, headers=auth("viewer")).status_code == 403
    assert client.post(f"/api/batches/{created['id']}/cancel", headers=auth("operator")).status_code == 200
