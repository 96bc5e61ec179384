"""Which value a job gets: its dispatch's, its own (class or an admin's edit), its queue's, the default."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import get_settings
from app.errors import ValidationError
from app.jobs import Job, define_queue, job
from app.jobs.base import declared_options
from app.kernel.dispatching import DispatchSpec, TaskInfo, resolve, synced_timeout
from app.kernel.queue_defaults import QueueDefaults, code_defaults, forget_code_queue, parse_rate_limit
from app.models import JobDefinition
from app.services.definitions import sync_definitions

SETTINGS = get_settings()
QUEUE = QueueDefaults("emails", max_attempts=7, retry_after=300, timeout=120, encrypted=None, weight=3)


def queues(name: str) -> QueueDefaults:
    return QUEUE if name == "emails" else QueueDefaults(name)


def plain_info(**fields: Any) -> TaskInfo:
    return TaskInfo(name="t.mail", queue="emails", max_attempts=3, **fields)


def definition(**fields: Any) -> JobDefinition:
    values = {"job_class": "t.mail", "name": "t.mail", "default_queue": "emails", "priority": 5,
              "max_attempts": 3, "timeout": 300, "retry_after": 60, "is_active": True}  # fmt: skip
    values.update(fields)
    return JobDefinition(**values)


def spec(**options: Any) -> DispatchSpec:
    return DispatchSpec(job_class="t.mail", **options)


def test_the_queue_fills_in_what_the_job_does_not_state() -> None:
    job_ = resolve(spec(), plain_info(), None, SETTINGS, queues)
    assert (job_.max_attempts, job_.timeout_s, job_.backoff) == (7, 120, [300])


def test_a_queue_never_configured_leaves_celeriacs_defaults() -> None:
    job_ = resolve(spec(queue="other"), plain_info(), None, SETTINGS, queues)
    assert (job_.max_attempts, job_.timeout_s, job_.backoff) == (3, None, None)


def test_dispatch_options_win_over_the_queue() -> None:
    job_ = resolve(spec(max_attempts=2, timeout_s=30, backoff=[5]), plain_info(), None, SETTINGS, queues)
    assert (job_.max_attempts, job_.timeout_s, job_.backoff) == (2, 30, [5])


def test_values_the_class_declares_win_over_the_queue() -> None:
    info = plain_info(timeout_s=60, declared=frozenset({"max_attempts", "timeout"}), has_backoff=True)
    job_ = resolve(spec(), info, None, SETTINGS, queues)
    assert (job_.max_attempts, job_.timeout_s, job_.backoff) == (3, 60, None)


def test_a_synced_definition_does_not_hide_the_queue() -> None:
    # The sync copied the class's defaults (3 attempts, 300 s): they are not choices.
    job_ = resolve(spec(), plain_info(), definition(), SETTINGS, queues)
    assert (job_.max_attempts, job_.timeout_s) == (7, 120)


def test_an_admins_edit_of_the_definition_wins_over_the_queue() -> None:
    job_ = resolve(spec(), plain_info(), definition(max_attempts=9, timeout=45), SETTINGS, queues)
    assert (job_.max_attempts, job_.timeout_s) == (9, 45)
    assert resolve(spec(max_attempts=1), plain_info(), definition(max_attempts=9), SETTINGS, queues).max_attempts == 1


def test_without_queue_settings_a_definition_still_gives_its_values() -> None:
    job_ = resolve(spec(queue="other"), plain_info(), definition(default_queue="other"), SETTINGS, queues)
    assert (job_.max_attempts, job_.timeout_s) == (3, 300)


def test_queue_encryption_applies_unless_the_class_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.kernel.dispatching as dispatching

    monkeypatch.setattr(dispatching, "require_keys", lambda: None)
    sealed = QueueDefaults("emails", encrypted=True)
    assert resolve(spec(), plain_info(), None, SETTINGS, lambda _: sealed).encrypted is True
    stated = plain_info(encrypted=False, declared=frozenset({"encrypted"}))
    assert resolve(spec(), stated, None, SETTINGS, lambda _: sealed).encrypted is False
    assert resolve(spec(encrypted=False), plain_info(), None, SETTINGS, lambda _: sealed).encrypted is False


def test_job_classes_declare_only_what_they_state() -> None:
    class Quiet(Job, abstract=True):
        def handle(self, **_: Any) -> None: ...

    class Loud(Quiet, abstract=True):
        max_tries = 5
        encrypted = False

    assert declared_options(Quiet) == frozenset()
    assert declared_options(Loud) == {"max_attempts", "encrypted"}


def test_the_job_decorator_sets_only_the_options_it_is_given() -> None:
    def nothing(**_: Any) -> None: ...

    bare = job("tests.queue_precedence.bare", queue="emails")(nothing)
    tried = job("tests.queue_precedence.tried", queue="emails", max_tries=2, timeout=10)(nothing)
    assert declared_options(bare) == frozenset() and bare.max_tries == Job.max_tries
    assert declared_options(tried) == {"max_attempts", "timeout"}


def test_the_sync_writes_what_dispatch_takes_for_not_chosen(app: Any) -> None:
    from app.db import db

    info = TaskInfo(name="tests.queue_precedence.synced", max_attempts=3)
    sync_definitions(db.session, [info], {}, SETTINGS.max_timeout_s)
    row = db.session.query(JobDefinition).filter_by(job_class=info.name, tenant_id=None).one()
    assert (row.max_attempts, row.timeout) == (info.max_attempts, synced_timeout(info, SETTINGS.max_timeout_s))
    db.session.rollback()


def test_define_queue_gives_code_defaults_and_refuses_nonsense() -> None:
    try:
        define_queue("tests-defined", max_attempts=5, retry_after=300, rate_limit="100/60", encrypted=True,
                     weight=10, max_pending=1000)  # fmt: skip
        assert code_defaults("tests-defined") == QueueDefaults(
            "tests-defined", max_attempts=5, retry_after=300, encrypted=True, weight=10, max_pending=1000
        )
        for bad in ({"max_attempts": 0}, {"weight": 101}, {"colour": "red"}, {"timeout": SETTINGS.max_timeout_s + 1}):
            with pytest.raises(ValidationError):
                define_queue("tests-defined", **bad)
        with pytest.raises(ValidationError):
            define_queue("bad name!")
    finally:
        forget_code_queue("tests-defined")


@pytest.mark.parametrize(
    ("given", "expected"),
    [("100/60", (100, 60)), ((5, 1), (5, 1)), ({"limit": 2, "per": 3}, (2, 3))],
)
def test_rate_limits_are_read_in_every_documented_shape(given: Any, expected: tuple[int, int]) -> None:
    assert parse_rate_limit(given) == expected


@pytest.mark.parametrize("given", ["100", "0/60", "a/b", (1,), (True, 1), {"limit": 1}, 7])
def test_other_rate_limit_shapes_are_refused(given: Any) -> None:
    with pytest.raises(ValidationError):
        parse_rate_limit(given)
