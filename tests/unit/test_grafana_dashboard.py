"""The Grafana dashboard in docs/ only charts metrics /metrics really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.monitoring import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "celeriac-dashboard.json"


def test_every_panel_queries_an_exposed_metric() -> None:
    exposed = {family.name for family in metrics.families(metrics.Snapshot(workers_online=0, recorder=_recorder()))}
    names = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            names.update(re.findall(r"celeriac_[a-z0-9_]+", target["expr"]))
    base = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in names}
    assert base and base <= exposed, base - exposed


def _recorder() -> dict[str, float]:
    return {"lag_p50_ms": 1.0, "lag_p99_ms": 2.0, "backlog": 0.0, "alive": 1.0}
