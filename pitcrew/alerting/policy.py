"""The alerting sections of pitcrew.yaml (see docs/alerting.md): the routing tree `route:`,
`inhibit_rules:`, `time_intervals:` and `alerting:` (the watchdog), and the translation of the
flat `routes:` list of earlier policies into a tree.

    route:
      receiver: ops                  # the root: required, takes whatever no child takes
      group_by: [alertRule]          # ['...'] turns grouping off (each alert on its own)
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 4h
      routes:
        - matchers: ['severity="critical"', 'kind=~"alert|rotation"']
          receiver: pager
          continue: true
          mute_time_intervals: [maintenance]
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2  # google-re2: matchers run in linear time, as Alertmanager's Go regexp
from pydantic import BeforeValidator, Field, field_validator, model_validator

from pitcrew.schema import StrictModel, matching

GROUP_ALL = "..."
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_MATCHER = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$", re.S
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = 366 * 86400
Op = Literal["=", "!=", "=~", "!~"]


def _label_name(name: str) -> str:
    return matching(name, LABEL_NAME, " is not a label name", shown=None)


def parse_duration(value: Any) -> float:
    """`30s`, `5m`, `4h`, `1h30m`, `1d`, or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m or 4h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 4h or 1h30m")
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ValueError("must be a duration such as 30s, 5m or 4h")
    if not 0 <= seconds <= MAX_DURATION:
        raise ValueError(f"must be between 0 and {MAX_DURATION // 86400} days")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _compile_regex(value: str) -> Any:
    """RE2, as Alertmanager's Go regexp: matching takes time linear in the label's length, so
    no matcher (a Reader's filter, a silence, a policy route) can make a label value cost
    exponential backtracking."""
    options = re2.Options()
    options.dot_nl = True  # `.` matches a newline, as re.S did
    options.log_errors = False  # a bad pattern is the caller's 400, not a line on stderr
    try:
        return re2.compile(value, options)
    except re2.error as exc:
        problem = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) \
            else str(exc)
        raise ValueError(f"{value[:200]!r} is not a valid regular expression in RE2 syntax, "
                         f"as Alertmanager's ({problem})") from None


_CONTROL = re.compile("[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


class Matcher:
    """One `name op value` condition on a label set. Regular expressions are anchored at both
    ends, as in Alertmanager; a label an alert lacks has the value ""."""

    __slots__ = ("_regex", "name", "op", "value")

    def __init__(self, name: str, op: Op, value: str) -> None:
        matching(name, LABEL_NAME, " is not a label name (letters, digits, _ . -)", shown=None)
        self.name, self.op, self.value = name, op, value
        self._regex: Any = None
        if op in ("=~", "!~"):
            self._regex = _compile_regex(value)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """`name=value`, `name!="value"`, `name=~"a|b"`, `name!~regex`."""
        if not isinstance(text, str):
            raise ValueError("a matcher is a string such as 'alertRule=\"cpu-high\"'")
        found = _MATCHER.match(text)
        if not found:
            raise ValueError(
                f"{text[:100]!r} is not a matcher: write name=value, name!=value, "
                "name=~regex or name!~regex"
            )
        value = found["value"]
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if _CONTROL.search(value):
            # Matchers are echoed to terminals, the console and audit records: an escape
            # sequence or a bidi override there would rewrite what an operator reads.
            raise ValueError(f"{text[:100]!r}: a matcher must not hold control or bidi "
                             "characters (write a regex escape such as \\x1b instead)")
        return cls(found["name"], found["op"], value)  # type: ignore[arg-type]

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def __repr__(self) -> str:
        return f"Matcher({self})"


def matchers_of(texts: list[str]) -> list[Matcher]:
    return [Matcher.parse(t) for t in texts]


def _check_matchers(texts: list[str]) -> list[str]:
    for text in texts:
        Matcher.parse(text)
    return texts


MatcherList = Annotated[list[str], Field(max_length=50)]


# ------------------------------------------------------------------ time intervals

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]


def _clock(text: str) -> time:
    found = re.fullmatch(r"(\d{2}):(\d{2})", text.strip())
    if not found or int(found[1]) > 24 or int(found[2]) > 59 or (
        int(found[1]) == 24 and int(found[2]) != 0
    ):
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00-24:00)")
    if int(found[1]) == 24:
        return time.max
    return time(int(found[1]), int(found[2]))


def _ranges(items: list[str], names: list[str] | None, low: int, high: int,
            what: str) -> list[tuple[int, int]]:
    """`monday:friday`, `1:5`, `-1` (from the end, days of month only) as inclusive ranges."""
    out = []
    for item in items:
        bounds = str(item).strip().lower().split(":")
        if len(bounds) > 2:
            raise ValueError(f"{item!r} is not a {what} or a range first:last")
        values = []
        for bound in bounds:
            if names is not None and bound in names:
                values.append(names.index(bound) + low)
                continue
            try:
                number = int(bound)
            except ValueError:
                raise ValueError(f"{bound!r} is not a {what}") from None
            if names is not None and not low <= number <= high:
                raise ValueError(f"{bound!r} is not a {what}")
            if names is None and not (low <= number <= high or -high <= number <= -1):
                raise ValueError(f"{bound!r} is not a {what} ({low}..{high} or -1..-{high})")
            values.append(number)
        out.append((values[0], values[-1]))
    return out


class TimeRange(StrictModel):
    start_time: str
    end_time: str

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if _clock(self.start_time) >= _clock(self.end_time):
            raise ValueError("start_time must be before end_time")
        return self


class TimeInterval(StrictModel):
    """When an interval is on: every given field must match (an omitted field always does)."""

    times: list[TimeRange] | None = None
    weekdays: list[str] | None = Field(default=None, description="monday:friday, sunday, ...")
    days_of_month: list[str] | None = Field(default=None, description="1:7, -1 (the last)")
    months: list[str] | None = Field(default=None, description="january:march, 12, ...")
    location: str = "UTC"

    @model_validator(mode="after")
    def _parse(self) -> TimeInterval:
        _ranges(self.weekdays or [], _WEEKDAYS, 1, 7, "weekday")
        _ranges(self.days_of_month or [], None, 1, 31, "day of month")
        _ranges(self.months or [], _MONTHS, 1, 12, "month")
        try:
            ZoneInfo(self.location)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"location {self.location!r} is not a known time zone") from None
        return self

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.location))
        if self.times and not any(
            _clock(t.start_time) <= local.time() < _clock(t.end_time) for t in self.times
        ):
            return False
        if self.weekdays and not any(
            a <= local.isoweekday() <= b
            for a, b in _ranges(self.weekdays, _WEEKDAYS, 1, 7, "weekday")
        ):
            return False
        if self.days_of_month:
            last = calendar.monthrange(local.year, local.month)[1]
            day = local.day
            for a, b in _ranges(self.days_of_month, None, 1, 31, "day of month"):
                first = a if a > 0 else last + 1 + a
                final = b if b > 0 else last + 1 + b
                if first <= day <= final:
                    break
            else:
                return False
        return not self.months or any(
            a <= local.month <= b for a, b in _ranges(self.months, _MONTHS, 1, 12, "month")
        )


# ------------------------------------------------------------------ the tree


class RouteNode(StrictModel):
    """One node of the routing tree. A child inherits its parent's receiver, grouping and
    timing unless it sets its own."""

    name: str | None = Field(default=None, max_length=100)
    receiver: str | None = None
    matchers: MatcherList = Field(default_factory=list)
    continue_matching: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = Field(default=None, max_length=20)
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[RouteNode] = Field(default_factory=list, max_length=100)

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        return _check_matchers(value)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if GROUP_ALL in value and len(value) > 1:
            raise ValueError(f"'{GROUP_ALL}' (grouping off) cannot be combined with labels")
        return [name if name == GROUP_ALL else _label_name(name) for name in value]


class InhibitRule(StrictModel):
    """While an alert matching `source_matchers` fires, alerts matching `target_matchers` that
    have the same values for the `equal` labels are muted. An alert never inhibits itself."""

    source_matchers: MatcherList = Field(min_length=1)
    target_matchers: MatcherList = Field(min_length=1)
    equal: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        return _check_matchers(value)

    @field_validator("equal")
    @classmethod
    def _equal(cls, value: list[str]) -> list[str]:
        return [_label_name(name) for name in value]


class Watchdog(StrictModel):
    """pitcrew watches its own deliveries: a notification still undelivered after
    `after_attempts` attempts or `older_than` raises a pitcrew alert."""

    after_attempts: int = Field(default=10, ge=1, le=10_000)
    older_than: Duration = Field(default=3600.0, gt=0)
    receiver: str | None = Field(
        default=None, description="Where the alert goes; the root route's receiver if omitted "
        "(a stuck receiver is never told about itself: the fallback is used, or the root's).")


class AlertingSettings(StrictModel):
    watchdog: Watchdog = Field(default_factory=Watchdog)


# ------------------------------------------------------------------ checks


def tree_problems(root: RouteNode, receivers: set[str], intervals: set[str],
                  where: str = "route") -> list[str]:
    """Every problem of a routing tree: the root's receiver, unknown receivers and intervals."""
    problems = []
    if not root.receiver:
        problems.append(
            f"{where}.receiver: the root route must name a receiver (it takes every alert no "
            "other route takes, so nothing is ever left unrouted)"
        )
    if root.matchers:
        problems.append(f"{where}.matchers: the root route matches everything; "
                        "put matchers on its child routes")

    def walk(node: RouteNode, path: str) -> None:
        if node.receiver and node.receiver not in receivers:
            problems.append(f"{path}.receiver: unknown receiver {node.receiver!r} "
                            f"(defined: {', '.join(sorted(receivers)) or 'none'})")
        for key in ("mute_time_intervals", "active_time_intervals"):
            for i, name in enumerate(getattr(node, key)):
                if name not in intervals:
                    problems.append(f"{path}.{key}[{i}]: unknown time interval {name!r} "
                                    f"(defined: {', '.join(sorted(intervals)) or 'none'})")
        for i, child in enumerate(node.routes):
            walk(child, f"{path}.routes[{i}]")

    walk(root, where)
    return problems


# ------------------------------------------------------------------ the flat `routes:` list


def translate_flat_routes(routes: list[Any]) -> RouteNode:
    """A tree equivalent to the flat `routes:` of earlier policies. Each flat route becomes a
    child per channel (all but its last with `continue: true`); the root's receiver is the
    first channel of the first route without `match` (the catch-all). Grouping is off and
    timings are zero, so every notification is delivered at once, on its own, as before.
    Raises ValueError when no route takes everything."""
    catch_all = next((r for r in routes if r.match.kinds is None and r.match.severities is None),
                     None)
    if catch_all is None:
        raise ValueError(
            "routes: no route takes every notification, so some would reach nobody. Add a last "
            "route without `match` (e.g. `- name: rest` with `channels: [...]`), or write the "
            "routing tree `route:` whose root names a `receiver` (see docs/alerting.md)"
        )
    children = []
    for route in routes:
        matchers = []
        if route.match.kinds is not None:
            matchers.append(f'kind=~"{"|".join(route.match.kinds)}"')
        if route.match.severities is not None:
            matchers.append(f'severity=~"{"|".join(route.match.severities)}"')
        for i, channel in enumerate(route.channels):
            last = i == len(route.channels) - 1
            children.append(RouteNode.model_validate({
                "name": route.name, "receiver": channel, "matchers": matchers,
                "continue": route.continue_matching or not last,
            }))
    return RouteNode.model_validate({
        "name": "root", "receiver": catch_all.channels[0], "group_by": [GROUP_ALL],
        "group_wait": 0, "group_interval": 0, "repeat_interval": 0, "routes": children,
    })
