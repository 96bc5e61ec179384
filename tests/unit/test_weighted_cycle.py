"""The queue cycle workers use: weighted order when weights exist, -Q order otherwise."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from kombu.utils.scheduling import cycle_by_name

from app.control import weighted_cycle
from app.control.weighted_cycle import WeightedCycle, parse_weights, weighted_order


def test_kombu_finds_the_cycle_by_the_name_celeryconfig_gives() -> None:
    import celeryconfig

    name = celeryconfig.broker_transport_options["queue_order_strategy"]
    assert cycle_by_name(name) is WeightedCycle


def test_the_first_queue_is_drawn_in_proportion_to_weight() -> None:
    rng = random.Random(7)
    firsts = Counter(weighted_order(["a", "b", "c"], {"a": 6, "b": 3}, rng)[0] for _ in range(10_000))
    # Weights 6, 3 and 1 (c has none): 60 %, 30 %, 10 %.
    assert 5700 < firsts["a"] < 6300 and 2700 < firsts["b"] < 3300 and 800 < firsts["c"] < 1200


def test_without_weights_the_worker_keeps_its_q_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weighted_cycle, "current_weights", lambda: {"elsewhere": 5})
    cycle = WeightedCycle()
    cycle.update(["critical", "default", "low"])
    assert [cycle.consume(3) for _ in range(5)] == [["critical", "default", "low"]] * 5
    cycle.rotate("critical")
    assert cycle.consume(2) == ["critical", "default"]


def test_with_a_weight_every_queue_still_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weighted_cycle, "current_weights", lambda: {"low": 100})
    cycle = WeightedCycle(["critical", "low"])
    orders = {tuple(cycle.consume(2)) for _ in range(2000)}
    assert orders == {("critical", "low"), ("low", "critical")}


def test_unreadable_weights_keep_the_last_known(monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    weighted_cycle.forget_weights()
    monkeypatch.setattr(weighted_cycle, "load_weights", lambda _client: {"a": 2})
    assert weighted_cycle.current_weights() == {"a": 2}

    def down(_client: Any) -> dict[str, int]:
        raise redis.ConnectionError("down")

    monkeypatch.setattr(weighted_cycle, "load_weights", down)
    monkeypatch.setattr(weighted_cycle, "CACHE_TTL_S", 0.0)
    weighted_cycle._cache = (weighted_cycle._cache[0], 0.0, {"a": 2}) if weighted_cycle._cache else None
    assert weighted_cycle.current_weights() == {"a": 2}
    weighted_cycle.forget_weights()


def test_the_mirror_is_parsed_leniently() -> None:
    assert parse_weights({b"a": b"3", b"b": b"x", "c": "0", "d": 2}) == {"a": 3, "d": 2}
