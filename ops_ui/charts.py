"""Stacked bar charts as plain geometry, drawn by the `chart` macro as inline SVG.

Server-side SVG needs no JavaScript charting library, obeys the console's strict CSP
(no inline styles or scripts) and swaps cleanly in an htmx live update.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    label: str
    value: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    top: float
    bars: list[Bar] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    #: (x, label) of a few evenly spaced bucket labels under the bars.
    ticks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.top <= 0


def bar_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    width: int = 640,
    height: int = 160,
    max_ticks: int = 6,
) -> Chart:
    """Stack each series' value per label, scaled so the tallest stack fills `height`."""
    count = len(labels)
    totals = [sum(values[i] for values in series.values()) for i in range(count)]
    top = max(totals, default=0.0)
    chart = Chart(width=width, height=height, top=top, series=list(series))
    if count == 0:
        return chart
    slot = width / count
    gap = min(2.0, slot * 0.2)
    for i, label in enumerate(labels):
        base = float(height)
        for name, values in series.items():
            value = float(values[i])
            if value <= 0 or top <= 0:
                continue
            h = value / top * height
            base -= h
            chart.bars.append(Bar(i * slot + gap / 2, base, slot - gap, h, name, label, value))
    step = max(1, round(count / max_ticks))
    # Centred labels, kept inside the drawing so the first and last are not cut off.
    margin = min(24.0, width / 2)
    chart.ticks.extend(
        (min(max(i * slot + slot / 2, margin), width - margin), labels[i]) for i in range(0, count, step)
    )
    return chart
