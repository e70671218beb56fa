"""The checks on the query parameters of the dead-letter list routes (the pydantic models in
pitcrew.http.models apply them before any storage round trip), and the paged listing of jobs.

Every list answers `{"<items>": [...], "continuation": token | null}` (pitcrew.http.paging). Ids,
times, text and property filters are bounded and refused with a 400 naming the parameter:
a caller never gets a 500 or a slow answer out of a hostile query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pitcrew.errors import InvalidInput
from pitcrew.http.paging import NOT_OURS, Page
from pitcrew.ports import StateStore
from pitcrew.state import RunRecord

GROUP_ID = re.compile(r"^[0-9a-f]{12}$")
MESSAGE_ID = re.compile(r"^[0-9a-f]{12}-[0-9a-f]{20}$")
JOB_ID = re.compile(r"^[0-9]{14}-[0-9a-f]{8}$")  # ASCII digits: \d takes any script's
MAX_SPAN = timedelta(days=366)
JOBS_DEFAULT_SPAN = timedelta(days=30)
JOB_STATUSES = ("queued", "running", "paused", "succeeded", "cancelled", "failed")
MAX_TEXT = 200
MAX_PROPERTIES = 10
PROPERTY_PREFIX = "prop."
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$")


def check_id(pattern: re.Pattern[str], value: str, field: str, what: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not pattern.fullmatch(value):
        raise InvalidInput(field, f"is not a {what} id")
    return value


def group_id(value: str, field: str = "group") -> str:
    return check_id(GROUP_ID, value, field, "dead-letter group (12 hex)")


def message_id(value: str, field: str = "message") -> str:
    return check_id(MESSAGE_ID, value, field, "failed-message")


def job_id(value: str, field: str = "job") -> str:
    return check_id(JOB_ID, value, field, "job")


def position_after(state: Mapping[str, Any] | None, pattern: re.Pattern[str]) -> str | None:
    """The position inside a decoded continuation token of a dead-letter list route."""
    if state is None:
        return None
    after = state.get("after")
    if set(state) != {"after"} or not isinstance(after, str) or len(after) > 64 or \
            not pattern.fullmatch(after):
        raise InvalidInput("continuation", NOT_OURS)
    return after


def time_value(raw: Any, name: str) -> datetime | None:
    """An ISO 8601 time between the years 2000 and 2999 (UTC when it names no offset)."""
    text = (raw if isinstance(raw, str) else "").strip()
    if not text:
        return None
    if len(text) > 40 or not text.isascii():
        raise InvalidInput(name, "is not an ISO 8601 time")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z")
                                       else text)
    except ValueError:
        raise InvalidInput(name, f"is not an ISO 8601 time: {text!r}") from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not 2000 <= value.year <= 2999:
        raise InvalidInput(name, "must be a time between the years 2000 and 2999")
    value = value.astimezone(UTC)
    if not 2000 <= value.year <= 2999:  # the offset moved it across (1999 or 3000 in UTC)
        raise InvalidInput(name, "must be a time between the years 2000 and 2999 (UTC)")
    return value


MAX_ENTITY_CHARS = 300


def known_source(value: str | None, sources: Sequence[str]) -> str | None:
    """`source`: a source the policy names (a 400 lists them), or None when absent."""
    if value is not None and value not in sources:
        listed = ", ".join(sorted(sources)) or "none"
        raise InvalidInput("source", f"is not a source in the policy; sources: {listed}")
    return value


def entity_value(raw: Any) -> str | None:
    """`entity`: a group's entity as listed (`queue:orders`, ...), matched exactly."""
    value = raw if isinstance(raw, str) and raw else None
    if value is not None and (len(value) > MAX_ENTITY_CHARS or not value.isprintable()):
        raise InvalidInput("entity", f"must be printable text of at most {MAX_ENTITY_CHARS} "
                           "characters")
    return value


def bounded_range(since: datetime | None, until: datetime | None, *,
                  default_span: timedelta | None = None
                  ) -> tuple[datetime | None, datetime | None]:
    """`since` (inclusive) and `until` (exclusive), at most MAX_SPAN apart. With
    `default_span`, a missing end is filled in so the range is always bounded."""
    if default_span is not None:
        if until is None:
            until = (since + default_span) if since else datetime.now(UTC) + timedelta(minutes=1)
        if since is None:
            since = until - default_span
    if since is not None and until is not None:
        if since >= until:
            raise InvalidInput("since", "must be earlier than until")
        if until - since > MAX_SPAN:
            raise InvalidInput("until", f"a time range spans at most {MAX_SPAN.days} days")
    return since, until


def text_value(raw: Any, name: str = "text") -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    if len(raw) > MAX_TEXT or not _PRINTABLE.match(raw):
        raise InvalidInput(name, f"must be at most {MAX_TEXT} printable characters")
    return raw


def property_pairs(query: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """`prop.<key>=<value>`: application property `key` equals `value` (as text; booleans
    `true`/`false`)."""
    pairs = []
    for name, value in query.items():
        if not isinstance(name, str) or not name.startswith(PROPERTY_PREFIX):
            continue
        key = name[len(PROPERTY_PREFIX):]
        if not key or len(key) > 128 or not _PRINTABLE.match(key):
            raise InvalidInput(name, "property names are 1 to 128 printable characters")
        if not isinstance(value, str) or len(value) > MAX_TEXT or not _PRINTABLE.match(value):
            raise InvalidInput(name, f"must be at most {MAX_TEXT} printable characters")
        pairs.append((key, value))
    if len(pairs) > MAX_PROPERTIES:
        raise InvalidInput("prop", f"at most {MAX_PROPERTIES} property filters")
    return tuple(sorted(pairs))


# ------------------------------------------------------------------ job listings


def jobs_page(state: StateStore, kind: str, *, since: datetime, until: datetime, limit: int,
              status: str | None = None, after: str | None = None) -> Page[RunRecord]:
    """Jobs of `kind` requested within [since, until), oldest first: a job id starts with its
    request time, so the range is an id range."""
    return state.runs_between(kind, f"{since:%Y%m%d%H%M%S}", f"{until:%Y%m%d%H%M%S}",
                              limit=limit, status=status, after=after)
