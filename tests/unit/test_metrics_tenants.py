"""/metrics as Prometheus users expect it: a `tenant` label on every per-tenant series, base
units, a metrics token that scrapes every tenant and nothing else, and `promtool check
metrics` clean on a real scrape."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from app import redis_keys
from app.db import db, session_scope
from app.errors import ValidationError
from app.kernel.apply import EventApplier
from app.models import LIVE_STATUSES, ApiToken, AuditLog, JobExecution
from app.models.api_token import METRICS_TOKEN
from app.services.auth import create_token, revoke_token
from tests.conftest import IN_CI, assert_problem
from tests.unit.test_metrics import _complete, _samples
from tests.unit.test_recording_apply import lifecycle

#: Families whose figures are shared by every tenant (the broker, workers, recorder, recoveries).
GLOBAL = {
    "celeriac_queue_depth",
    "celeriac_workers_online",
    "celeriac_recorder_lag_seconds",
    "celeriac_recorder_backlog",
    "celeriac_recorder_alive",
    "celeriac_recoveries",
}


def _metrics_token() -> dict[str, str]:
    new = create_token(db.session, "ops", "viewer", name="prometheus", kind=METRICS_TOKEN)
    db.session.commit()
    return {"Authorization": f"Bearer {new.raw}"}


def _pending(tenant: str, queue: str) -> None:
    """A job published and not started: a live series and an oldest-pending age."""
    publish = lifecycle(str(uuid.uuid4()), t0=time.time() - 30)[0]
    publish["c"] = {**publish["c"], "tenant": tenant}
    publish["q"] = queue
    with session_scope() as session:
        EventApplier().apply(session, [publish])


def _retried(tenant: str, queue: str) -> None:
    from celeriac import events as ev

    events = lifecycle(str(uuid.uuid4()), t0=time.time())
    events[0]["c"] = {**events[0]["c"], "tenant": tenant}
    events[0]["q"] = queue
    retry = ev.retried(events[0]["id"], events[1]["ak"], 5, None, ConnectionError("busy"), None, None)
    retry["ts"] = events[1]["ts"] + 0.5
    with session_scope() as session:
        EventApplier().apply(session, events[:2] + [retry])


@pytest.fixture()
def two_tenants() -> Iterator[tuple[str, str, str]]:
    """Two tenants that ran, retried and queued jobs on one queue of their own.

    The jobs still live are deleted afterwards: no worker consumes their queue, and a
    superadmin's health would call it critical for the rest of the session.
    """
    first, second, queue = f"ta-{uuid.uuid4().hex[:8]}", f"tb-{uuid.uuid4().hex[:8]}", f"mq-{uuid.uuid4().hex[:8]}"
    for tenant, runs in ((first, 2), (second, 1)):
        for _ in range(runs):
            _complete(tenant, queue, 40)
        _retried(tenant, queue)
        _pending(tenant, queue)
    yield first, second, queue
    with session_scope() as session:
        live = [status.value for status in LIVE_STATUSES]
        session.execute(delete(JobExecution).where(JobExecution.queue == queue, JobExecution.status.in_(live)))


@pytest.fixture()
def recorder_stats(redis_client: Any) -> Iterator[None]:
    """The recorder's lag figures, as a running recorder publishes them (put back afterwards)."""
    keys = ("lag_p50_ms", "lag_p99_ms", "backlog")
    added = [key for key in keys if not redis_client.hexists(redis_keys.RECORDER_STATS, key)]
    if added:
        redis_client.hset(redis_keys.RECORDER_STATS, mapping={key: 1250.0 for key in added})
    yield
    if added:
        redis_client.hdel(redis_keys.RECORDER_STATS, *added)


def _scrape(client: Any, headers: dict[str, str]) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    text: str = response.get_data(as_text=True)
    return text


def _tenants_of(text: str, queue: str) -> dict[str, set[str]]:
    """For each family, the tenants its series of `queue` carry."""
    found: dict[str, set[str]] = {}
    for name, samples in _samples(text).items():
        for sample in samples:
            if sample.labels.get("queue") == queue and "tenant" in sample.labels:
                found.setdefault(name, set()).add(sample.labels["tenant"])
    return found


def test_every_per_tenant_series_carries_its_tenant(client: Any, auth: Any, two_tenants: Any) -> None:
    first, _second, queue = two_tenants
    samples = _samples(_scrape(client, auth("viewer", first)))
    for name, series in samples.items():
        for sample in series:
            if name in GLOBAL:
                assert "tenant" not in sample.labels, sample
            else:
                assert sample.labels.get("tenant") == first, sample
    ran = {
        name
        for name, series in samples.items()
        if any(s.labels.get("queue") == queue and s.labels.get("tenant") == first for s in series)
    }
    assert ran >= {
        "celeriac_jobs_finished",
        "celeriac_jobs_retried",
        "celeriac_job_runtime_seconds",
        "celeriac_job_wait_seconds",
        "celeriac_jobs_live",
        "celeriac_queue_oldest_pending_seconds",
    }
    runtime = [s for s in samples["celeriac_job_runtime_seconds"] if s.labels.get("queue") == queue]
    assert {s.labels["job_class"] for s in runtime} == {"demo.echo"}, "runtimes can be filtered by queue and class"


def test_each_tenants_token_scrapes_only_its_tenant(client: Any, auth: Any, two_tenants: Any) -> None:
    first, second, queue = two_tenants
    for tenant in (first, second):
        seen = _tenants_of(_scrape(client, auth("viewer", tenant)), queue)
        assert seen and all(tenants == {tenant} for tenants in seen.values()), seen
    finished = {
        s.labels["tenant"]: s.value
        for s in _samples(_scrape(client, auth("operator", second)))["celeriac_jobs_finished"]
        if s.labels["queue"] == queue and s.labels["status"] == "completed" and s.name.endswith("_total")
    }
    assert finished == {second: 1.0}


def test_a_metrics_token_scrapes_every_tenant_labelled(client: Any, two_tenants: Any) -> None:
    first, second, queue = two_tenants
    text = _scrape(client, _metrics_token())
    seen = _tenants_of(text, queue)
    assert seen["celeriac_jobs_finished"] == {first, second}
    assert seen["celeriac_queue_oldest_pending_seconds"] == {first, second}
    completed = {
        s.labels["tenant"]: s.value
        for s in _samples(text)["celeriac_jobs_finished"]
        if s.labels["queue"] == queue and s.labels["status"] == "completed" and s.name.endswith("_total")
    }
    assert completed == {first: 2.0, second: 1.0}
    depths = [s for s in _samples(text)["celeriac_queue_depth"] if s.labels["queue"] == queue]
    assert len(depths) == 1, "the broker's depth is one series for every tenant"


def test_a_metrics_token_reads_metrics_and_nothing_else(client: Any, app: Any) -> None:
    headers = _metrics_token()
    for path in ("/api/jobs", "/api/admin/queue/metrics", "/api/admin/queue/stats", "/api/openapi.json", "/api/queues"):
        body = assert_problem(client.get(path, headers=headers), 403)
        assert "metrics" in body["detail"]
    dispatch = client.post("/api/jobs/dispatch", json={"job_class": "demo.echo", "payload": {}}, headers=headers)
    assert_problem(dispatch, 403)
    # The console knows no bearer tokens: a metrics token opens no page there.
    page = client.get("/jobs", headers=headers)
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    accepting = [name for name, view in app.view_functions.items() if getattr(view, "accepts_metrics_token", False)]
    assert accepting == ["metrics.prometheus"]


def test_a_revoked_metrics_token_is_refused(client: Any) -> None:
    new = create_token(db.session, "ops", "viewer", name="old prometheus", kind=METRICS_TOKEN)
    db.session.commit()
    headers = {"Authorization": f"Bearer {new.raw}"}
    assert client.get("/metrics", headers=headers).status_code == 200
    revoke_token(db.session, new.token)
    db.session.commit()
    assert_problem(client.get("/metrics", headers=headers), 401)


def test_a_metrics_token_takes_the_viewer_role_only(app: Any) -> None:
    for role in ("operator", "admin"):
        with pytest.raises(ValidationError, match="viewer"):
            create_token(db.session, "ops", role, kind=METRICS_TOKEN)
    db.session.rollback()


def test_recorder_lag_is_in_seconds_by_quantile(client: Any, auth: Any, recorder_stats: Any, redis_client: Any) -> None:
    stats = redis_client.hgetall(redis_keys.RECORDER_STATS)
    samples = _samples(_scrape(client, auth("viewer")))
    lag = {s.labels["quantile"]: s.value for s in samples["celeriac_recorder_lag_seconds"]}
    assert lag == {"0.5": float(stats[b"lag_p50_ms"]) / 1000, "0.99": float(stats[b"lag_p99_ms"]) / 1000}
    assert not [name for name in samples if name.endswith("_ms")]


def test_promtool_finds_nothing_to_lint_in_a_real_scrape(client: Any, two_tenants: Any, recorder_stats: None) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool is missing (Debian package prometheus; `make .venv` installs it as root)"
        if IN_CI:
            pytest.fail(f"under CI=true {reason}")
        pytest.skip(reason)
    text = _scrape(client, _metrics_token())
    assert "celeriac_recorder_lag_seconds{" in text and 'tenant="' in text
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, f"promtool check metrics: {checked.stdout}{checked.stderr}"
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""


# --- creating metrics tokens: CLI and console ---


def _bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def test_flask_tokens_create_metrics_makes_a_scrape_token(app: Any, client: Any, two_tenants: Any) -> None:
    first, second, queue = two_tenants
    runner = app.test_cli_runner()
    tenant = f"ops-{uuid.uuid4().hex[:8]}"
    args = ["tokens", "create", "--tenant", tenant, "--role", "viewer", "--metrics", "--name", "prometheus"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    raw = result.output.strip().splitlines()[-1]
    assert raw.startswith("cel_") and "every tenant" in result.output
    assert _tenants_of(_scrape(client, _bearer(raw)), queue)["celeriac_jobs_finished"] == {first, second}
    assert_problem(client.get("/api/jobs", headers=_bearer(raw)), 403)
    listed = runner.invoke(args=["tokens", "list", "--tenant", tenant]).output.splitlines()
    assert listed[0].split()[:4] == ["ID", "TENANT", "ROLE", "KIND"]
    assert listed[1].split()[1:4] == [tenant, "viewer", "metrics"]
    refused = runner.invoke(args=["tokens", "create", "--tenant", tenant, "--role", "operator", "--metrics"])
    assert refused.exit_code != 0 and "viewer" in refused.output
    plain = runner.invoke(args=["tokens", "create", "--tenant", tenant, "--role", "viewer"]).output
    assert _tenants_of(_scrape(client, _bearer(plain.strip().splitlines()[-1])), queue) == {}


def _created_raw(html: str) -> str:
    found = re.search(r'class="secret"[^>]*>(cel_[^<]+)<', html)
    assert found, html
    return found.group(1)


def test_a_superadmin_creates_a_metrics_token_in_the_console(console: Any, client: Any, two_tenants: Any) -> None:
    first, second, queue = two_tenants
    root = console(role="admin", tenant=None, superadmin=True)
    page = root.get("/tokens").get_data(as_text=True)
    assert "<th>Kind</th>" in page and 'name="metrics"' in page
    name = f"prometheus-{uuid.uuid4().hex[:6]}"
    answer = root.post("/tokens", data={"name": name, "role": "viewer", "tenant": "ops", "metrics": "y"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    raw = _created_raw(answer.get_data(as_text=True))
    assert _tenants_of(_scrape(client, _bearer(raw)), queue)["celeriac_jobs_live"] == {first, second}
    assert_problem(client.get("/api/admin/queue/stats", headers=_bearer(raw)), 403)
    stored = db.session.scalar(select(ApiToken).where(ApiToken.name == name))
    assert stored is not None and stored.kind == METRICS_TOKEN
    created = select(AuditLog).where(AuditLog.action == "token.create", AuditLog.target_id == stored.id)
    audit = db.session.scalar(created)
    assert audit is not None and "metrics" in str(audit.after)
    listing = root.get("/tokens").get_data(as_text=True)
    assert "metrics (every tenant)" in listing
    wrong_role = root.post("/tokens", data={"name": "x", "role": "admin", "tenant": "ops", "metrics": "y"})
    assert wrong_role.status_code == 422 and "viewer role" in wrong_role.get_data(as_text=True)


def test_a_tenant_admin_cannot_create_a_metrics_token(console: Any) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    admin = console(role="admin", tenant=tenant)
    assert 'name="metrics"' not in admin.get("/tokens").get_data(as_text=True)
    answer = admin.post("/tokens", data={"name": "sneaky", "role": "viewer", "metrics": "y"})
    assert answer.status_code == 422 and "Only a superadmin" in answer.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(ApiToken).where(ApiToken.tenant_id == tenant)) is None
