"""Forecast against synthetic series whose true exhaustion date is known."""

from __future__ import annotations

import random

import pytest

from pitcrew.quota.forecast import DAY, forecast, spaced, theil_sen, thin

HOUR = 3600.0
T0 = 1_800_000_000.0


def series(values: list[float], every: float = HOUR) -> list[tuple[float, float]]:
    return [(T0 + i * every, v) for i, v in enumerate(values)]


def test_linear_series_predicts_the_exact_day() -> None:
    # 2 per hour = 48 a day from 100; limit 1000; the newest sample (i=167) is at 434.
    values = [100 + 2 * i for i in range(168)]
    result = forecast(series(values), 1000)
    assert result is not None
    assert result.slope_per_day == pytest.approx(48)
    assert result.days_to_exhaustion == pytest.approx((1000 - values[-1]) / 48)


def test_noisy_series_within_ten_percent_of_the_truth() -> None:
    rng = random.Random(7)
    truth_slope = 10 / DAY * HOUR  # 10 a day, sampled hourly
    values = [200 + truth_slope * i + rng.gauss(0, 3) for i in range(24 * 14)]
    # Spikes (a one-off burst) that least squares would follow.
    for i in range(0, len(values), 37):
        values[i] += 60
    last_true = 200 + truth_slope * (len(values) - 1)
    truth_days = (500 - last_true) / 10
    result = forecast(series(values), 500)
    assert result is not None and result.days_to_exhaustion is not None
    assert result.days_to_exhaustion == pytest.approx(truth_days, rel=0.10)


def test_flat_series_is_never_exhausted_and_not_noise() -> None:
    result = forecast(series([42.0] * 100), 100)
    assert result is not None
    assert result.slope_per_day == 0
    assert result.days_to_exhaustion is None


def test_shrinking_series_is_never_exhausted() -> None:
    result = forecast(series([90 - i * 0.5 for i in range(50)]), 100)
    assert result is not None and result.days_to_exhaustion is None


def test_stepped_series_follows_the_average_rate() -> None:
    # +20 once a day (a nightly scale-out), sampled hourly for three weeks: 20 a day on average.
    values = [100 + 20 * (i // 24) for i in range(24 * 21)]
    result = forecast(series(values), 1000)
    assert result is not None and result.days_to_exhaustion is not None
    truth = (1000 - values[-1]) / 20
    assert result.days_to_exhaustion == pytest.approx(truth, rel=0.15)


def test_one_step_then_flat_is_not_extrapolated_forever() -> None:
    # A single jump long ago, flat since: the median slope is 0, not the jump's.
    values = [50.0] * 20 + [80.0] * 80
    result = forecast(series(values), 100)
    assert result is not None and result.days_to_exhaustion is None


def test_too_few_samples_give_no_forecast() -> None:
    assert forecast(series([1, 2]), 10, min_samples=3) is None


def test_at_or_over_the_limit_is_zero_days() -> None:
    result = forecast(series([90, 95, 100, 105]), 100)
    assert result is not None and result.days_to_exhaustion == 0


def test_thin_keeps_ends_and_bounds_the_work() -> None:
    points = series(list(range(1000)))
    thinned = thin(points, 64)
    assert len(thinned) == 64 and thinned[0] == points[0] and thinned[-1] == points[-1]


def test_theil_sen_ignores_an_outlier_least_squares_would_follow() -> None:
    pts = [(float(t), 2.0 * t) for t in range(10)]
    pts[5] = (5.0, 1000.0)
    slope, intercept = theil_sen(pts)
    assert slope == pytest.approx(2.0) and intercept == pytest.approx(0.0)


def test_rescans_seconds_apart_do_not_change_the_forecast() -> None:
    # A quota growing 2 an hour, then `pitcrew quota scan` run again and again seconds after the
    # last scheduled scan (usage unchanged): one observation, not a flat stretch that outvotes
    # the growth (before, the pairs among the rescans, slope 0, made the median 0: "never").
    base = series([39, 41, 43])
    before = forecast(base, 100, min_samples=3)
    assert before is not None and before.days_to_exhaustion == pytest.approx(57 / 48)
    last = base[-1][0]
    for rescans in range(1, 11):
        points = base + [(last + 5.0 * k, 43.0) for k in range(1, rescans + 1)]
        after = forecast(points, 100, min_samples=3)
        assert after is not None and after.days_to_exhaustion is not None, rescans
        assert after.days_to_exhaustion == pytest.approx(before.days_to_exhaustion, rel=0.01)
        assert after.slope_per_day == pytest.approx(before.slope_per_day, rel=0.01)
        assert after.samples == 3


def test_rescans_do_not_count_toward_min_samples() -> None:
    # Three readings within a minute are one observation: no forecast from them.
    points = [(T0, 10.0), (T0 + 20, 10.0), (T0 + 40, 11.0)]
    assert forecast(points, 100, min_samples=3) is None
    assert forecast([*points, (T0 + HOUR, 12.0), (T0 + 2 * HOUR, 14.0)], 100,
                    min_samples=3) is not None


def test_spaced_samples_are_all_kept_and_forecast_as_before() -> None:
    rng = random.Random(3)
    values = [100 + 0.5 * i + rng.gauss(0, 2) for i in range(24 * 7)]
    points = series(values)
    assert spaced(points, 600) == points
    assert spaced(points, HOUR) == points  # exactly one interval apart: still separate
    merged = forecast(points, 500)
    plain = forecast(points, 500, min_spacing=0)
    assert merged == plain and merged is not None and merged.samples == len(points)


def test_spaced_keeps_the_newest_of_each_run() -> None:
    points = [(0.0, 1.0), (10.0, 2.0), (590.0, 3.0), (600.0, 4.0), (1300.0, 5.0), (1301.0, 6.0)]
    # Runs start at 0 and 600 and 1300 (each at least 600 after the last run's start).
    assert spaced(points, 600) == [(590.0, 3.0), (600.0, 4.0), (1301.0, 6.0)]
    assert spaced(points, 0) == points
    assert spaced([], 600) == []
