"""The sample's tasks on a real worker (Celeriac's pytest plugin, docs/testing.md): what each
returns, and what Celeriac records of it (`celeriac_events`: the events its recorder turns
into rows)."""

import pytest
from app.tasks import Flaky, add, count_rows, flaky, mul, total
from celery import chain, chord, group


def test_add_returns_the_sum_and_is_recorded(celeriac_worker, celeriac_events):
    result = add.delay(2, 3)

    assert result.get(timeout=10) == 5
    outcome = celeriac_events.outcome(result.id)
    assert (outcome["t"], outcome["res"]) == ("ok", 5)
    assert celeriac_events.kinds(result.id) == ["pub", "start", "ok"]
    published = celeriac_events.wait(result.id, "pub")
    assert (published["task"], published["pl"]) == ("app.tasks.add", {"args": [2, 3], "kwargs": {}})


def test_flaky_is_retried_by_autoretry_for_until_it_succeeds(celeriac_worker, celeriac_events):
    result = flaky.delay(3)

    assert result.get(timeout=10) == 3
    kinds = celeriac_events.kinds(result.id)
    assert (kinds.count("start"), kinds.count("retry"), kinds[-1]) == (3, 2, "ok")
    assert "attempt 1 of 3 failed" in celeriac_events.wait(result.id, "retrying")["err"]


def test_flaky_gives_up_after_max_retries(celeriac_worker, celeriac_events):
    result = flaky.delay(99)

    outcome = celeriac_events.outcome(result.id)
    assert (outcome["t"], outcome["exc"]) == ("fail", "Flaky")
    assert "attempt 4 of 99 failed" in outcome["err"]
    # max_retries=3: the first run and three retries.
    assert celeriac_events.kinds(result.id).count("start") == 4
    with pytest.raises(Flaky):
        result.get(timeout=10)


def test_a_chord_sums_what_its_header_returned(celeriac_worker, celeriac_events):
    callback = chord(group(add.s(1, 1), add.s(2, 2)))(total.s())

    assert callback.get(timeout=10) == 6
    header = [member.id for member in callback.parent.results]
    assert [celeriac_events.outcome(member)["res"] for member in header] == [2, 4]
    assert {celeriac_events.wait(member, "pub")["grp"] for member in header} == {callback.parent.id}
    assert celeriac_events.outcome(callback.id)["res"] == 6


def test_a_chain_passes_each_result_to_the_next_step(celeriac_worker, celeriac_events):
    steps = chain(add.s(1, 2), mul.s(10)).apply_async()

    assert steps.get(timeout=10) == 30
    second = celeriac_events.wait(steps.id, "pub")
    assert (second["parent"], second["pl"]) == (steps.parent.id, {"args": [3, 10], "kwargs": {}})


def test_a_countdown_holds_the_task_back(celeriac_worker, celeriac_events):
    result = add.apply_async((4, 4), countdown=1)

    assert result.get(timeout=10) == 8
    published, started = celeriac_events.wait(result.id, "pub"), celeriac_events.wait(result.id, "start")
    assert published["eta"] is not None
    assert started["ts"] - published["ts"] >= 0.9


def test_count_rows_reports_its_progress(celeriac_worker, celeriac_events):
    result = count_rows.delay(4)

    assert celeriac_events.outcome(result.id)["res"] == 4
    reports = [event for event in celeriac_events.of(result.id) if event["t"] == "progress"]
    assert (reports[-1]["p"], reports[-1]["msg"]) == (100, "row 4 of 4")


def test_a_tenant_header_files_the_job_under_its_tenant(celeriac_worker, celeriac_events):
    result = add.apply_async((5, 5), headers={"celeriac": {"tenant": "sample-tenant"}})

    assert result.get(timeout=10) == 10
    assert celeriac_events.wait(result.id, "pub")["c"]["tenant"] == "sample-tenant"
