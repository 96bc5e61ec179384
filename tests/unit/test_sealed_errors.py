"""Encrypted jobs' errors (J9): sealed at the source, so Celery and the history see a token only.

Eager runs (`Task.apply`) go through the same tracer, request and signals as a worker's;
the real worker is in tests/integration/test_encryption.py.
"""

from __future__ import annotations

import logging
import pickle
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from celery.exceptions import Ignore, Reject, Retry
from cryptography.fernet import Fernet
from sqlalchemy import select

import tests.sample_jobs_sealed as sealed_jobs
from app.crypto import (
    MAX_SEALED_ERROR_CHARS,
    REDACTED,
    EncryptionError,
    SealedError,
    open_error,
    seal_error,
    seal_exception,
    seal_payload,
    unseal,
)
from app.db import session_scope
from app.kernel.apply import EventApplier
from app.kernel.failure_groups import NewFailure
from app.kernel.fingerprint import fingerprint, is_sealed_message
from app.models import FailureGroup, JobExecution
from app.tracked_task import sealed_exception
from celeriac import events as ev
from tests.crypto_keys import use_keys

KEY = Fernet.generate_key().decode()
ENCRYPTED_HEADER = {"celeriac": {"encrypted": True}}


@pytest.fixture()
def keys() -> Iterator[None]:
    with use_keys(KEY):
        yield


@pytest.fixture()
def canary() -> str:
    return f"canary-{uuid.uuid4().hex}"


@pytest.fixture()
def task_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """Celery's own log lines for tasks (retry, failure with traceback) and the job runner's."""
    runner = logging.getLogger("app.jobs.base")
    monkeypatch.setattr(runner, "disabled", False)  # the test database's Alembic logging config disabled it
    caplog.set_level(logging.INFO, logger="celery.app.trace")
    caplog.set_level(logging.INFO, logger=runner.name)
    return caplog


def opened(text: str) -> Any:
    found = open_error(text)
    assert found is not None, text[:80]
    return found


# -- the sealed error itself -----------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "trace"),
    [
        ("short", "Traceback (most recent call last):\n  File 'x.py', line 1, in f\nValueError: short\n"),
        ("m" * 5_000, "t" * 50_000),
        ('é"\\\n' * 900, "ü\n" * 9_000),  # characters JSON escapes into several bytes
    ],
)
def test_a_sealed_error_always_fits_the_recorded_message_and_opens_again(keys: None, message: str, trace: str) -> None:
    token = seal_error("ValueError", message, trace)
    assert len(token) <= MAX_SEALED_ERROR_CHARS
    assert len(f"ValueError: {token}") <= ev.MAX_ERROR_CHARS  # the recorder keeps it whole
    error = opened(f"ValueError: {token}")
    assert error.type == "ValueError"
    # What is cut: the traceback's oldest lines first (its end names the raising line), then the message's end.
    assert trace.endswith(error.traceback.removeprefix("[...]"))
    assert message.startswith(error.message.removesuffix("[...]"))


def test_stand_in_names_the_original_pickles_without_it_and_holds_only_a_token(keys: None, canary: str) -> None:
    try:
        raise ValueError(f"card {canary} declined")
    except ValueError as exc:
        stand_in = seal_exception(exc)
    assert stand_in.celeriac_type == "ValueError" and isinstance(stand_in.original, ValueError)
    assert canary not in str(stand_in) and canary not in repr(stand_in)
    error = opened(str(stand_in))
    assert error.message == f"card {canary} declined" and "raise ValueError" in error.traceback

    copied = pickle.loads(pickle.dumps(stand_in))  # what reaches Celery's main process
    assert canary.encode() not in pickle.dumps(stand_in)
    assert copied.celeriac_type == "ValueError" and copied.original is None and str(copied) == str(stand_in)
    assert str(SealedError(str(stand_in))) == str(stand_in)  # a result backend rebuilds it from its args
    assert seal_exception(stand_in) is stand_in


def test_revealing_needs_a_configured_key(canary: str) -> None:
    with use_keys(KEY):
        text = f"ValueError: {seal_exception(ValueError(canary))}"
    with use_keys(Fernet.generate_key().decode()), pytest.raises(EncryptionError):
        open_error(text)
    assert open_error("ValueError: nothing sealed here") is None and open_error(None) is None


# -- Celery's control flow keeps its meaning ---------------------------------------------


def test_retry_reject_and_ignore_are_rebuilt_around_a_stand_in(keys: None, canary: str) -> None:
    autoretry = Retry(exc=ValueError(f"token {canary}"), when=5)
    retry = sealed_exception(autoretry)
    assert isinstance(retry, Retry) and retry.when == 5 and isinstance(retry.exc, SealedError)
    assert canary not in str(retry) and opened(str(retry)).message == f"token {canary}"
    already = sealed_exception(retry)
    assert already is retry

    worded = sealed_exception(Retry(f"retry because of {canary}", when=1))
    assert canary not in str(worded) and opened(str(worded)).message == f"retry because of {canary}"
    assert str(sealed_exception(Retry(when=3))) == "Retry in 3s"

    reject = sealed_exception(Reject(KeyError(canary), requeue=True))
    assert isinstance(reject, Reject) and getattr(reject, "requeue", None) is True
    assert canary not in repr(reject) and opened(repr(reject)).type == "KeyError"

    ignore = Ignore()
    assert sealed_exception(ignore) is ignore


def test_an_error_that_cannot_be_sealed_says_nothing(canary: str) -> None:
    with use_keys():  # no key: sealing fails, and nothing is said in clear instead
        stand_in = sealed_exception(ValueError(canary))
    assert isinstance(stand_in, SealedError) and canary not in str(stand_in) and REDACTED in str(stand_in)


# -- eager runs: the task side -------------------------------------------------------------


def test_encrypted_job_fails_and_retries_with_a_stand_in_and_its_hook_gets_the_original(
    keys: None, canary: str, task_log: pytest.LogCaptureFixture, redis_client: Any
) -> None:
    header = {"celeriac": {"encrypted": True, "max_attempts": 2}}
    outcome = sealed_jobs.SealedFailure.task.apply(kwargs=seal_payload({"secret": canary}), headers=header)

    assert outcome.failed() and isinstance(outcome.result, SealedError)
    assert outcome.result.celeriac_type == "ValueError"
    assert canary not in str(outcome.result) and canary not in str(outcome.traceback)
    assert "The above exception" not in str(outcome.traceback)  # nothing chained to the stand-in
    error = opened(str(outcome.result))
    assert error.message == f"card {canary} declined"
    assert f"KeyError: 'no account for {canary}'" in error.traceback  # the cause is sealed with it
    # Celery logged the retry and the failure with tokens only.
    assert "retry: Retry in 0s: SealedError(" in task_log.text and "raised unexpected: SealedError(" in task_log.text
    assert canary not in task_log.text
    # The job's own failed() hook was given the original exception.
    seen = unseal(redis_client.get(sealed_jobs.HOOK_KEY.format(job_id=outcome.id)).decode())
    assert seen == {"type": "ValueError", "message": f"card {canary} declined"}
    # In this process the original stays reachable (dispatch_now's caller may unwrap it).
    assert isinstance(outcome.result.original, ValueError)


def test_plain_task_with_autoretry_retries_and_fails_with_stand_ins(
    keys: None, canary: str, task_log: pytest.LogCaptureFixture
) -> None:
    outcome = sealed_jobs.sealed_autoretry.apply(kwargs=seal_payload({"secret": canary}), headers=ENCRYPTED_HEADER)
    assert outcome.failed() and isinstance(outcome.result, SealedError)
    assert opened(str(outcome.result)).message == f"token {canary} refused"
    assert "retry: Retry in 0s: SealedError(" in task_log.text and canary not in task_log.text
    assert canary not in str(outcome.traceback)


def test_a_failing_failed_hook_of_an_encrypted_job_is_logged_by_type_only(
    keys: None, canary: str, task_log: pytest.LogCaptureFixture
) -> None:
    outcome = sealed_jobs.SealedHookFails.task.apply(kwargs=seal_payload({"secret": canary}), headers=ENCRYPTED_HEADER)
    assert outcome.failed() and isinstance(outcome.result, SealedError)
    assert "failed() hook raised RuntimeError" in task_log.text
    assert canary not in task_log.text


def test_jobs_that_are_not_encrypted_raise_their_own_exceptions(
    canary: str, task_log: pytest.LogCaptureFixture
) -> None:
    """The control: the same class, dispatched without encryption, fails as it always did."""
    outcome = sealed_jobs.SealedHookFails.task.apply(kwargs={"secret": canary})
    assert outcome.failed() and type(outcome.result) is ValueError and canary in str(outcome.result)
    assert canary in task_log.text  # Celery's line, and the hook's traceback


# -- the history: exception type readable, message a token, one group per type and class ---


def test_recorded_failure_names_the_original_type_and_holds_a_token(keys: None, canary: str) -> None:
    stand_in = seal_exception(ValueError(canary))
    event = ev.failed("job-1", None, 3, 0.1, stand_in, traceback=f"app.crypto.SealedError: {stand_in}")
    assert event["exc"] == "ValueError" and event["err"] == f"ValueError: {stand_in}"
    assert is_sealed_message(event["err"]) and opened(event["err"]).message == canary


def test_sealed_failures_group_by_type_and_class_with_an_encrypted_sample(keys: None) -> None:
    def failure(exc: BaseException, job_class: str = "billing.charge") -> Any:
        return fingerprint(ev.exception_type(s := seal_exception(exc)), f"{ev.exception_type(s)}: {s}", "tb", job_class)

    one, two = failure(ValueError("card 4111 declined")), failure(ValueError("card 5500 expired"))
    assert one.key == two.key and one.sealed and one.message == REDACTED and one.frames == ()
    assert failure(KeyError("x")).key != one.key
    assert failure(ValueError("x"), job_class="billing.refund").key != one.key
    # A message that merely quotes a token is grouped as usual.
    quoting = fingerprint("InvalidToken", f"cannot open {seal_exception(ValueError('x'))} today", None)
    assert not quoting.sealed and quoting.message != REDACTED
    # What groups, reports and notifications keep of it.
    assert NewFailure(
        "id", "t", "billing.charge", "default", one, "ValueError: gAAAAA…", datetime.now(UTC)
    ).message == (REDACTED)


def test_recorder_keeps_no_sealed_text_as_a_groups_sample(keys: None) -> None:
    tenant = "sealed-" + uuid.uuid4().hex[:8]
    ids = [str(uuid.uuid4()) for _ in range(2)]
    batch: list[dict[str, Any]] = []
    for n, job_id in enumerate(ids):
        pub = ev.published(
            job_id=job_id,
            task="billing.charge",
            queue="default",
            priority=5,
            payload=seal_payload({"card": f"4111-{n}"}),
            retries=0,
            eta=None,
            expires=None,
            parent_id=None,
            root_id=None,
            celeriac={"tenant": tenant, "encrypted": True},
        )
        stand_in = seal_exception(ValueError(f"card 4111-{n} declined"))
        fail = ev.failed(job_id, None, 3, 0.1, stand_in, traceback=f"app.crypto.SealedError: {stand_in}")
        pub["ts"], fail["ts"] = 1_000.0 + n, 1_000.5 + n
        batch += [pub, fail]
    with session_scope() as session:
        EventApplier().apply(session, batch)
    with session_scope() as session:
        groups = list(session.scalars(select(FailureGroup).where(FailureGroup.tenant_id == tenant)))
        assert len(groups) == 1
        group = groups[0]
        assert group.count == 2 and group.exception_type == "ValueError"
        assert group.message == REDACTED and group.last_message == REDACTED and group.frames == []
        rows = list(session.scalars(select(JobExecution).where(JobExecution.id.in_(ids))))
        assert {r.exception_type for r in rows} == {"ValueError"}
        assert all(is_sealed_message(r.error_message) for r in rows)
        assert "4111" not in repr([(r.error_message, r.exception_trace) for r in rows])
