"""The append-only audit trail: who asked for what, on which target, with what outcome.

Records are only ever inserted (never updated or deleted by pitcrew). The partition is the UTC
day, the row key starts with the time, so a time-range query is one partition-range query over
the days it covers (at most MAX_RANGE) and returns records in order, a page at a time, resumed
by a continuation token bound to that query. Details must never contain a secret value:
callers pass names, versions and ids only.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pitcrew.errors import InvalidInput
from pitcrew.paging import (
    CONTINUATION_PARAM,
    MAX_LIMIT,
    Page,
    decode_token,
    encode_token,
    query_page,
)
from pitcrew.state import table_key

if TYPE_CHECKING:
    from azure.data.tables import TableClient

Outcome = Literal["succeeded", "failed", "skipped", "planned", "queued"]

# The widest time range one query may cover: 31 day partitions, read with one range query.
MAX_RANGE = timedelta(days=31)
MAX_FILTER_CHARS = 512


def app_identity() -> str:
    """How automatic actions are attributed: the app's managed identity."""
    client_id = os.environ.get("AZURE_CLIENT_ID", "").strip()
    return f"app:pitcrew/{client_id}" if client_id else "app:pitcrew"


@dataclass(frozen=True)
class AuditRecord:
    actor: str
    action: str
    target: str
    outcome: Outcome
    correlation_id: str
    details: Mapping[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.record_id,
            "time": self.time.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "correlationId": self.correlation_id,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class AuditQuery:
    """Which records to read: since <= time < until (at most MAX_RANGE apart), optionally
    only one target, actor or action. Times are normalised to UTC."""

    since: datetime
    until: datetime
    target: str | None = None
    actor: str | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        since, until = self.since.astimezone(UTC), self.until.astimezone(UTC)
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)
        if since >= until:
            raise InvalidInput("since", "must be earlier than until")
        if until - since > MAX_RANGE:
            raise InvalidInput(
                "since",
                f"the range from since to until may be at most {MAX_RANGE.days} days "
                f"(asked for {(until - since).days}); read a longer period one range at a time",
            )
        for name in ("target", "actor", "action"):
            value = getattr(self, name)
            if value is not None and len(value) > MAX_FILTER_CHARS:
                raise InvalidInput(name, f"may be at most {MAX_FILTER_CHARS} characters")

    def fingerprint(self) -> str:
        """Identifies the query inside a continuation token, so a token only resumes the
        query that issued it."""
        canonical = json.dumps(
            [self.since.isoformat(), self.until.isoformat(), self.target, self.actor, self.action]
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class AuditLog(Protocol):
    def append(self, record: AuditRecord) -> None: ...

    def page(
        self, query: AuditQuery, *, limit: int, continuation: Mapping[str, Any] | None = None
    ) -> Page[AuditRecord]: ...

    def query(
        self, *, since: datetime, until: datetime, target: str | None = None, limit: int = 1000
    ) -> Iterator[AuditRecord]: ...


class TableAuditLog:
    """AuditLog over the `<prefix>audit` table."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def append(self, record: AuditRecord) -> None:
        time = record.time.astimezone(UTC)
        self._table.create_entity(
            {
                "PartitionKey": time.strftime("%Y%m%d"),
                "RowKey": f"{time.strftime('%H%M%S%f')}-{record.record_id}",
                "Time": time,
                "Actor": record.actor,
                "Action": record.action,
                "Target": record.target,
                "TargetKey": table_key(record.target),
                "Outcome": record.outcome,
                "CorrelationId": record.correlation_id,
                "Details": json.dumps(record.details, default=str, sort_keys=True),
            }
        )

    def page(
        self, query: AuditQuery, *, limit: int, continuation: Mapping[str, Any] | None = None
    ) -> Page[AuditRecord]:
        """At most `limit` records of `query`, oldest first, and a token for the rest.

        One partition-range query over the day partitions the range covers (the service
        returns them in key order, which is time order). `continuation` is the decoded state
        of a token this method issued for the same query; InvalidInput when it is not.
        """
        from azure.core.exceptions import HttpResponseError

        resume = _resume_from(continuation, query)
        conditions = [
            "PartitionKey ge @first",
            "PartitionKey le @last",
            "Time ge @since",
            "Time lt @until",
        ]
        params: dict[str, Any] = {
            "first": query.since.strftime("%Y%m%d"),
            "last": query.until.strftime("%Y%m%d"),
            "since": query.since,
            "until": query.until,
        }
        for column, name, value in (
            ("TargetKey", "target", None if query.target is None else table_key(query.target)),
            ("Actor", "actor", query.actor),
            ("Action", "action", query.action),
        ):
            if value is not None:
                conditions.append(f"{column} eq @{name}")
                params[name] = value
        try:
            page = query_page(
                self._table,
                " and ".join(conditions),
                parameters=params,
                limit=limit,
                continuation=resume,
            )
        except HttpResponseError as exc:
            if resume is not None and exc.status_code == 400:
                # The service refused the resume position: a token edited by hand.
                raise InvalidInput(CONTINUATION_PARAM, _NOT_OURS) from None
            raise
        token = None
        if page.continuation is not None:
            state = decode_token(page.continuation) or {}
            token = encode_token({**state, _QUERY: query.fingerprint(),
                                  _SINCE: query.since.isoformat(),
                                  _UNTIL: query.until.isoformat()})
        return Page([_record(row) for row in page.items], token)

    def query(
        self, *, since: datetime, until: datetime, target: str | None = None, limit: int = 1000
    ) -> Iterator[AuditRecord]:
        """Records with since <= time < until (oldest first), optionally for one target."""
        wanted = AuditQuery(since=since, until=until, target=target)
        state: dict[str, Any] | None = None
        returned = 0
        while returned < limit:
            page = self.page(wanted, limit=min(limit - returned, MAX_LIMIT), continuation=state)
            yield from page.items
            returned += len(page.items)
            state = decode_token(page.continuation)
            if state is None:
                return


# Keys a continuation token carries beside Table storage's own (PartitionKey, RowKey).
_QUERY, _SINCE, _UNTIL = "q", "since", "until"
_TABLE_KEYS = frozenset({"PartitionKey", "RowKey"})
_NOT_OURS = "is not a continuation token pitcrew issued"


def window_of(continuation: Mapping[str, Any] | None) -> tuple[datetime | None, datetime | None]:
    """The since and until a continuation token was issued for (None without a token), so a
    caller may pass just the token for the next page."""
    if not continuation:
        return None, None
    try:
        return (datetime.fromisoformat(str(continuation[_SINCE])),
                datetime.fromisoformat(str(continuation[_UNTIL])))
    except (KeyError, ValueError):
        raise InvalidInput(CONTINUATION_PARAM, _NOT_OURS) from None


def _resume_from(
    continuation: Mapping[str, Any] | None, query: AuditQuery
) -> dict[str, Any] | None:
    """Table storage's resume position out of a token issued for `query`."""
    if not continuation:
        return None
    table_state = {k: v for k, v in continuation.items() if k in _TABLE_KEYS}
    extra = set(continuation) - _TABLE_KEYS - {_QUERY, _SINCE, _UNTIL}
    if extra or not isinstance(table_state.get("PartitionKey"), str):
        raise InvalidInput(CONTINUATION_PARAM, _NOT_OURS)
    if continuation.get(_QUERY) != query.fingerprint():
        raise InvalidInput(
            CONTINUATION_PARAM,
            "belongs to a different query: pass it with the since, until, target, actor and "
            "action of the page that returned it",
        )
    return table_state


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        actor=row["Actor"],
        action=row["Action"],
        target=row["Target"],
        outcome=row["Outcome"],
        correlation_id=row["CorrelationId"],
        details=json.loads(row.get("Details") or "{}"),
        time=row["Time"],
        record_id=row["RowKey"].split("-", 1)[1],
    )
