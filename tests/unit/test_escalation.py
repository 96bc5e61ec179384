"""Escalation (F3): webhook and SMTP delivery, de-duplication, failure rates, failures that stay local."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from app.config import EscalationConfig, load_settings
from app.failures.escalation import Escalator, FailureRates
from app.kernel.failure_groups import NewFailure
from app.kernel.fingerprint import fingerprint
from app.kernel.row_batch import Finished
from tests.receivers import smtp_sink, webhook_receiver


def failure(tenant: str, message: str = "order 7 failed", job_class: str = "orders.sync") -> NewFailure:
    fp = fingerprint("RuntimeError", message, None)
    return NewFailure(str(uuid.uuid4()), tenant, job_class, "default", fp, message, datetime.now(UTC), 3)


def test_permanent_failure_goes_to_webhook_and_smtp_once_per_fingerprint(redis_client: Any, unique: str) -> None:
    with webhook_receiver() as (url, hooks), smtp_sink() as (port, mails):
        config = EscalationConfig(
            webhook_urls=(url,), smtp_host="127.0.0.1", smtp_port=port, email_to=("ops@example.com",)
        )
        escalator = Escalator(config, redis_client)
        tenant = f"t-{unique}"
        escalator.after_commit([], [failure(tenant, "order 7 failed"), failure(tenant, "order 8 failed")])
        escalator.after_commit([], [failure(tenant, "order 9 failed")])
        escalator.after_commit([], [failure(tenant, "something else")])
        escalator.stop()
        assert len(hooks) == 2 and len(mails) == 2
        assert set(hooks[0]) == {"text"} and "orders.sync failed: RuntimeError" in hooks[0]["text"]
        assert "order 7 failed" in hooks[0]["text"] and "3 failure(s)" in hooks[0]["text"]
        assert mails[0]["To"] == "ops@example.com" and "orders.sync failed" in mails[0]["Subject"]
        # Another tenant's failure of the same kind is its own notification.
        other = Escalator(config, redis_client)
        other.after_commit([], [failure(f"o-{unique}")])
        other.stop()
        assert len(hooks) == 3


def test_a_broken_channel_is_logged_and_the_others_still_deliver(redis_client: Any, unique: str, caplog: Any) -> None:
    with webhook_receiver(status=500) as (bad, _), webhook_receiver() as (good, hooks):
        config = EscalationConfig(webhook_urls=("http://127.0.0.1:1/none", bad, good))
        escalator = Escalator(config, redis_client)
        escalator.after_commit([], [failure(f"t-{unique}")])
        escalator.stop()
    assert len(hooks) == 1
    assert sum("webhook delivery" in r.getMessage() for r in caplog.records) == 2


def test_nothing_configured_means_nothing_queued(redis_client: Any) -> None:
    escalator = Escalator(EscalationConfig(), redis_client)
    assert not escalator.enabled
    escalator.after_commit([Finished("x", "failed", job_class="a", tenant_id="t")], [failure("t")])
    assert escalator._thread is None


def test_failure_rate_over_threshold_notifies_once(redis_client: Any, unique: str) -> None:
    tenant = f"t-{unique}"
    with webhook_receiver() as (url, hooks):
        config = EscalationConfig(
            webhook_urls=(url,), on_failure=False, failure_rate_threshold=0.5, failure_rate_min_jobs=4
        )
        escalator = Escalator(config, redis_client)

        def batch(*statuses: str) -> list[Finished]:
            return [Finished(str(uuid.uuid4()), s, tenant_id=tenant, job_class="reports.build") for s in statuses]

        escalator.after_commit(batch("completed", "completed", "failed"), [])  # 3 jobs: under the minimum
        escalator.after_commit(batch("completed", "failed", "cancelled"), [])  # 2 of 5 failed
        assert escalator._thread is None
        escalator.after_commit(batch("failed", "failed"), [])  # 4 of 7
        escalator.after_commit(batch("failed"), [])  # still over: de-duplicated
        escalator.stop()
    assert len(hooks) == 1 and "reports.build: 57% of jobs failing" in hooks[0]["text"]


def test_failure_rates_forget_jobs_outside_the_window() -> None:
    rates = FailureRates(window_s=60)
    assert rates.observe(("t", "c"), True, 1_000.0) == (1, 1)
    assert rates.observe(("t", "c"), False, 1_030.0) == (2, 1)
    assert rates.observe(("t", "c"), False, 1_075.0) == (2, 0)


def test_escalation_settings_from_the_environment() -> None:
    settings = load_settings(
        {
            "CELERIAC_ESCALATION_WEBHOOK_URLS": "http://a/1, http://b/2",
            "CELERIAC_ESCALATION_SMTP_HOST": "mail",
            "CELERIAC_ESCALATION_EMAIL_TO": "a@x,b@x",
            "CELERIAC_FAILURE_RATE_THRESHOLD": "0.25",
            "CELERIAC_RETENTION_DAYS": "7",
        }
    )
    cfg = settings.escalation
    assert cfg.webhook_urls == ("http://a/1", "http://b/2") and cfg.email_to == ("a@x", "b@x") and cfg.enabled
    assert cfg.failure_rate_threshold == 0.25 and settings.retention_days == 7 and settings.failed_retention_days == 90
