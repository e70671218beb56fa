"""Fast takeover (issue 16.4): the resume timer ticks at least once per replay lease, so one
tick always falls within a dead worker's last lease and schedules the takeover for the second
after it ends: kill -> takeover at most LEASE + 1 s, whatever the tick's phase."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter

from functions import deadletter
from pitcrew.deadletter.replay import HEARTBEAT, LEASE


def _schedule(name: str) -> str:
    # The blueprint's own builders: function_app.app.get_functions() may run once a process.
    (fn,) = [b._function for b in deadletter.bp._function_builders
             if b._function.get_function_name() == name]
    return str(getattr(fn.get_trigger(), "schedule", ""))


def test_the_resume_timer_ticks_at_least_once_per_lease() -> None:
    ticks = croniter(_schedule("resume_replay_jobs"), datetime(2026, 1, 1, tzinfo=UTC),
                     second_at_beginning=True)
    previous = ticks.get_next(datetime)
    widest = timedelta(0)
    for _ in range(2 * 24 * 60):  # a day of ticks
        tick = ticks.get_next(datetime)
        widest = max(widest, tick - previous)
        previous = tick
    assert widest <= LEASE
    assert LEASE.total_seconds() + 1 < 60 - 15  # the worst case, comfortably under 60 s
    assert LEASE.total_seconds() >= HEARTBEAT * 2  # a live worker renews well before it ends
