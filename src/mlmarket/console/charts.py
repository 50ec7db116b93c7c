"""Charts drawn on the server as SVG (no script, no library): bars per day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

WIDTH, HEIGHT, GAP = 720, 160, 2


@dataclass(frozen=True)
class Bar:
    day: str
    value: float
    x: float
    y: float
    width: float
    height: float


def days_between(since: dt.date, until: dt.date) -> list[str]:
    """Every day from `since` to `until`, both included, as YYYY-MM-DD."""
    count = (until - since).days + 1
    return [(since + dt.timedelta(days=n)).isoformat() for n in range(count)]


def bars(days: list[str], values: dict[str, float]) -> list[Bar]:
    """One bar per day (zero where `values` has none), scaled to the largest."""
    top = max(values.values(), default=0.0) or 1.0
    width = WIDTH / max(len(days), 1)
    out = []
    for n, day in enumerate(days):
        value = values.get(day, 0.0)
        height = HEIGHT * value / top
        out.append(Bar(day, value, n * width, HEIGHT - height, max(width - GAP, 1), height))
    return out
