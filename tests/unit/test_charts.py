"""The console's stacked bar charts: bars scale to the tallest stack, labels stay visible."""

from __future__ import annotations

import pytest

from ops_ui.charts import bar_chart


def test_stacks_scale_to_the_tallest_and_keep_each_series_value() -> None:
    chart = bar_chart(["10:00", "10:01"], {"completed": [3, 1], "failed": [1, 0]}, width=200, height=100)
    assert chart.top == 4
    first = [b for b in chart.bars if b.label == "10:00"]
    assert [(b.series, b.value) for b in first] == [("completed", 3.0), ("failed", 1.0)]
    assert sum(b.height for b in first) == pytest.approx(100)  # the tallest stack fills the chart
    assert [b.height for b in chart.bars if b.label == "10:01"] == [pytest.approx(25)]


def test_zero_values_draw_no_bar_and_an_all_zero_chart_is_empty() -> None:
    assert bar_chart(["a", "b"], {"completed": [0, 0]}).empty
    assert bar_chart([], {"completed": []}).empty
    assert not bar_chart(["a"], {"completed": [1]}).empty


def test_tick_labels_stay_inside_the_drawing() -> None:
    labels = [f"{m:02d}" for m in range(60)]
    chart = bar_chart(labels, {"completed": [1] * 60}, width=300)
    assert chart.ticks and all(0 < x < 300 for x, _ in chart.ticks)
    assert chart.ticks[0][0] >= 24 and chart.ticks[0][1] == "00"
    assert len(chart.ticks) <= 7
