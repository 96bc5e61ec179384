"""Retry policy, priority mapping and settings: pure logic."""

from __future__ import annotations

import random

import pytest

from app.config import ConfigError, load_settings
from app.kernel.retry_policy import calculate_retry_delay, should_retry
from celeriac.priority import from_broker_priority, is_valid_priority, to_broker_priority


def test_list_backoff_repeats_its_last_value_and_is_capped() -> None:
    assert [calculate_retry_delay([30, 120, 300], n, cap_s=900) for n in (1, 2, 3, 4)] == [30, 120, 300, 300]
    assert calculate_retry_delay([5000], 1, cap_s=900) == 900
    assert calculate_retry_delay([], 1, cap_s=900) == 0
    assert calculate_retry_delay(45, 3, cap_s=900) == 45


def test_exponential_backoff_grows_with_jitter_within_bounds() -> None:
    rng = random.Random(1)
    delays = [calculate_retry_delay("exponential", n, cap_s=10_000, rng=rng) for n in range(1, 8)]
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(600, 10 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert calculate_retry_delay(None, 1, cap_s=3) <= 3
    with pytest.raises(ValueError):
        calculate_retry_delay("weird", 1, cap_s=10)
    with pytest.raises(ValueError):
        calculate_retry_delay(True, 1, cap_s=10)


def test_should_retry_respects_attempts_and_exception_lists() -> None:
    assert should_retry(ValueError(), 1, 3)
    assert not should_retry(ValueError(), 3, 3)
    assert not should_retry(KeyError(), 1, 3, retry_on=[ValueError])
    assert should_retry(ValueError(), 1, 3, retry_on=[ValueError])
    assert not should_retry(ValueError(), 1, 3, retry_on=[Exception], dont_retry_on=[ValueError])


def test_priority_scale_is_flipped_for_redis() -> None:
    assert [to_broker_priority(p) for p in (0, 5, 9)] == [9, 4, 0]
    assert [from_broker_priority(p) for p in (9, 4, 0, None, 42)] == [0, 5, 9, 5, 0]
    assert is_valid_priority(0) and is_valid_priority(9)
    assert not is_valid_priority(10) and not is_valid_priority(True) and not is_valid_priority("1")


def test_settings_defaults_and_validation() -> None:
    settings = load_settings({})
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("var/celeriac.db")
    assert settings.port == 8000 and settings.flower_port == 5555
    # Sized to the longest broker ETA and run time, not to CELERIAC_MAX_DELAY_S (30 days).
    assert settings.max_delay_s == 30 * 24 * 3600
    assert settings.visibility_timeout_s > settings.scheduled_after_s + settings.max_timeout_s
    assert settings.visibility_timeout_s < settings.max_delay_s
    pg = load_settings({"DATABASE_URL": "postgres://u@h/db", "CELERIAC_TASK_MODULES": "a.b, c"})
    assert pg.database_url == "postgresql+psycopg://u@h/db" and not pg.is_sqlite
    assert pg.task_modules == ("a.b", "c")
    assert load_settings({"CELERIAC_TRACKING": "off"}).tracking_enabled is False
    with pytest.raises(ConfigError, match="PORT"):
        load_settings({"PORT": "eighty"})
    with pytest.raises(ConfigError, match="at least"):
        load_settings({"CELERIAC_MAX_TIMEOUT_S": "0"})
    with pytest.raises(ConfigError, match="true or false"):
        load_settings({"CELERIAC_TRACKING": "maybe"})


def test_supervisor_identity_is_read_from_the_variables_supervisord_sets() -> None:
    from app.control.worker_side import supervisor_identity

    assert supervisor_identity(load_settings({})) is None
    alone = load_settings({"SUPERVISOR_PROCESS_NAME": "worker"})
    assert supervisor_identity(alone) == {"group": "worker", "process": "worker", "name": "worker:worker"}
    grouped = load_settings({"SUPERVISOR_PROCESS_NAME": "worker", "SUPERVISOR_GROUP_NAME": "celeriac"})
    assert supervisor_identity(grouped) == {"group": "celeriac", "process": "worker", "name": "celeriac:worker"}


def test_plain_tasks_get_the_same_hard_limit_grace_as_job_classes() -> None:
    import celeryconfig
    from app.config import HARD_LIMIT_GRACE_S

    assert celeryconfig.task_time_limit - celeryconfig.task_soft_time_limit == HARD_LIMIT_GRACE_S


def test_env_file_is_read_and_environment_wins(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.config import read_environment

    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9000\nFLOWER_PORT=6000\n")
    monkeypatch.setenv("FLOWER_PORT", "7000")
    merged = read_environment(env_file)
    assert merged["PORT"] == "9000" and merged["FLOWER_PORT"] == "7000"


def test_job_class_without_handle_is_refused() -> None:
    from app.jobs import Job

    with pytest.raises(TypeError, match="handle"):
        type("NoHandle", (Job,), {"__module__": __name__})
