"""Timer triggers: 6-field NCRONTAB (seconds first) or a TimeSpan interval, evaluated in UTC.

Azure evaluates schedules in UTC unless WEBSITE_TIME_ZONE is set; we use UTC so a schedule
behaves locally the way it does in a default deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pitcrew_dev.catalog import FunctionSpec
from pitcrew_dev.hostconfig import HostConfigError, parse_timespan, resolve_setting_refs
from pitcrew_dev.invoke import FunctionFailed, invoke

log = logging.getLogger("pitcrew_dev.host")


@dataclass(frozen=True)
class Schedule:
    """A resolved schedule: `expression` after `%SETTING%` substitution."""

    expression: str
    interval: timedelta | None = None  # set when the schedule is a TimeSpan, not NCRONTAB

    @classmethod
    def parse(cls, raw: str, settings: Mapping[str, str], *, function_name: str) -> Schedule:
        field = f"function {function_name!r} schedule"
        expression = resolve_setting_refs(raw, settings, field=field).strip()
        if ":" in expression:
            interval = parse_timespan(expression, field=field)
            if interval <= timedelta(0):
                raise HostConfigError(f"{field}: interval {expression!r} must be positive")
            return cls(expression=expression, interval=interval)
        cls._check_ncrontab(expression, field)
        return cls(expression=expression)

    @staticmethod
    def _check_ncrontab(expression: str, field: str) -> None:
        from croniter import croniter

        # Functions insists on six fields; croniter would also accept five, which would then
        # fail only once deployed.
        if len(expression.split()) != 6:
            raise HostConfigError(
                f"{field}: {expression!r} is not a 6-field NCRONTAB expression "
                "({second} {minute} {hour} {day} {month} {day-of-week})"
            )
        if not croniter.is_valid(expression, second_at_beginning=True):
            raise HostConfigError(f"{field}: {expression!r} is not a valid NCRONTAB expression")

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        from croniter import croniter

        nxt: datetime = croniter(self.expression, moment, second_at_beginning=True).get_next(
            datetime
        )
        return nxt


def timer_request(*, past_due: bool, last: datetime | None, next_run: datetime) -> Any:
    """The `func.TimerRequest` the worker builds from the host's timer payload."""
    from azure.functions.timer import TimerRequest

    status = {
        "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
        "Next": next_run.isoformat(),
        "LastUpdated": datetime.now(UTC).isoformat(),
    }
    return TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})


class TimerWorker:
    """Runs one timer function on its schedule until cancelled. A failed run never stops it."""

    def __init__(self, spec: FunctionSpec, schedule: Schedule) -> None:
        self.spec = spec
        self.schedule = schedule
        self.last_run: datetime | None = None

    async def run(self) -> None:
        if self.spec.trigger.get("runOnStartup"):
            await self.fire(past_due=False, next_run=self.schedule.next_after(_now()))
        due = self.schedule.next_after(_now())
        while True:
            await asyncio.sleep(max(0.0, (due - _now()).total_seconds()))
            following = self.schedule.next_after(due)
            # An occurrence missed while the previous run overran is reported as past due once,
            # then the schedule re-bases on the clock, as the real scheduler does.
            past_due = _now() >= following
            await self.fire(past_due=past_due, next_run=following)
            due = following if not past_due else self.schedule.next_after(_now())

    async def fire(self, *, past_due: bool, next_run: datetime) -> None:
        request = timer_request(past_due=past_due, last=self.last_run, next_run=next_run)
        self.last_run = _now()
        # A failure is already logged with its traceback by invoke; the schedule goes on.
        with contextlib.suppress(FunctionFailed):
            await invoke(self.spec, request)


def _now() -> datetime:
    return datetime.now(UTC)
