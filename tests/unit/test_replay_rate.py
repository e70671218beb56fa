"""The replay rate limit holds per message, whatever the batch size (issue 10.17): a token bucket
driven by an injected clock, never wall time."""

from __future__ import annotations

import itertools

import pytest

from pitcrew.deadletter.replay import TokenBucket, burst_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def _send_all(bucket: TokenBucket, clock: FakeClock, total: int, batch: int) -> list[float]:
    """Walk `total` messages in batches the way the worker does; each message's send time."""
    times: list[float] = []
    while len(times) < total:
        pending = min(batch, total - len(times))
        while pending:
            n = bucket.take(pending)
            times += [clock.now] * n
            pending -= n
            clock.now += 0.001  # the send itself takes a little time
    return times


def _max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_rate_two_with_a_batch_of_32_sends_one_message_every_half_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, burst=burst_for(2, 32), clock=clock, sleep=clock.sleep)
    times = _send_all(bucket, clock, 32, 32)
    assert times[0] == 0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 0.5 - 1e-9 for g in gaps)  # never two at once: not a batch at a time
    assert _max_in_window(times, 1.0) <= 2


@pytest.mark.parametrize(("rate", "batch"), [(2.0, 32), (50.0, 32), (500.0, 32), (1000.0, 100),
                                             (7.0, 1), (0.5, 100)])
def test_any_window_carries_at_most_rate_times_window_plus_the_burst(rate: float,
                                                                      batch: int) -> None:
    clock = FakeClock()
    burst = burst_for(rate, batch)
    bucket = TokenBucket(rate, burst=burst, clock=clock, sleep=clock.sleep)
    total = 2_000 if rate >= 50 else 100
    times = _send_all(bucket, clock, total, batch)
    assert len(times) == total
    for window in (0.1, 1.0, 10.0):
        assert _max_in_window(times, window) <= rate * window + burst
    achieved = (total - burst) / times[-1]
    assert abs(achieved - rate) / rate <= 0.10


def test_the_bucket_does_not_bank_idle_time_beyond_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=1, clock=clock, sleep=clock.sleep)
    assert bucket.take(5) == 1
    clock.now += 100  # idle for a long time
    assert bucket.take(5) == 1 and clock.now == 100
    assert bucket.take(5) == 1
    assert clock.now == pytest.approx(100.1)  # no burst from the idle period


def test_burst_is_a_tenth_of_a_second_at_least_one_at_most_a_batch() -> None:
    assert burst_for(2, 32) == 1
    assert burst_for(50, 32) == 5
    assert burst_for(5000, 32) == 32
    assert burst_for(0.1, 1) == 1
