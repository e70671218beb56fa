"""Days to exhaustion by a robust linear fit (Theil-Sen), written small: no numpy or scipy
(neither is in the deployed app).

Theil-Sen: the slope is the median of the slopes between every pair of samples, the intercept
the median of `y - slope * t`. Up to 29 % of the samples can be wild (a spike, a one-off
deployment) without moving the line, unlike least squares. A series longer than `max_points`
is thinned evenly first (the newest sample always kept), so one fit costs at most
max_points^2 / 2 slopes.

Samples closer together than `min_spacing` (a scan run again seconds after the last, two
scans at once) are one observation: each run of such samples counts once, as its newest sample.
Otherwise their pairs, whose slope is ~0 whatever the trend, would outvote the real growth, and
running a scan a few more times would erase a forecast. The runs are formed oldest first, so a
new sample can only join the newest run: extra scans never change how older samples count.

A quota whose usage never moves has slope 0 and no exhaustion date: it is not forecast to run
out, and its percent threshold alone still applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

DAY = 86_400.0
MIN_SPACING = 600.0  # seconds: closer samples are one observation (see spaced())


@dataclass(frozen=True)
class Forecast:
    slope_per_day: float
    level_now: float
    days_to_exhaustion: float | None  # None: not growing (or too few samples)
    samples: int


def thin(points: Sequence[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    """At most `max_points` points, evenly spread, the first and last always kept."""
    n = len(points)
    if n <= max_points:
        return list(points)
    step = (n - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]


def spaced(points: Sequence[tuple[float, float]], min_spacing: float
           ) -> list[tuple[float, float]]:
    """One point per run of points closer than `min_spacing` (seconds, or the unit of t): a run
    starts at a point at least `min_spacing` after the previous run's start and is represented
    by its newest point. `points` oldest first; points already that far apart are all kept."""
    out: list[tuple[float, float]] = []
    start = 0.0
    for t, y in points:
        if out and t - start < min_spacing:
            out[-1] = (t, y)  # the same observation, read again: the newest reading counts
        else:
            out.append((t, y))
            start = t
    return out


def theil_sen(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(slope, intercept) of the Theil-Sen line through (t, y) points (t in any unit)."""
    if len(points) < 2:
        raise ValueError("a fit needs at least two points")
    slopes = [
        (y2 - y1) / (t2 - t1)
        for i, (t1, y1) in enumerate(points)
        for t2, y2 in points[i + 1:]
        if t2 != t1
    ]
    if not slopes:
        raise ValueError("a fit needs points at two different times")
    slope = median(slopes)
    intercept = median(y - slope * t for t, y in points)
    return slope, intercept


def forecast(points: Sequence[tuple[float, float]], limit: float, *, min_samples: int = 3,
             max_points: int = 64, min_spacing: float = MIN_SPACING) -> Forecast | None:
    """Days until usage reaches `limit`, from (unix seconds, usage) points; None with fewer than
    `min_samples` observations (points `min_spacing` seconds apart, see spaced())."""
    ordered = spaced(sorted(points), min_spacing)
    if len(ordered) < max(2, min_samples):
        return None
    t0 = ordered[-1][0]
    # Days relative to the newest sample: small numbers, and level_now is the intercept.
    pts = [((t - t0) / DAY, y) for t, y in thin(ordered, max_points)]
    if len({y for _, y in pts}) == 1:
        return Forecast(0.0, pts[-1][1], None, len(ordered))
    try:
        slope, level = theil_sen(pts)
    except ValueError:
        return None
    # The fitted level, but never below what was last read: usage that just jumped counts.
    level_now = max(level, ordered[-1][1])
    if slope <= 0:
        return Forecast(slope, level_now, None, len(ordered))
    days = max(0.0, (limit - level_now) / slope)
    return Forecast(slope, level_now, days, len(ordered))
