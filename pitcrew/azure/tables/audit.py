"""AuditLog (pitcrew.ports) over the `<prefix>audit` table.

The partition is the UTC day and the row key starts with the time, so a time-range query is one
partition-range query over the days it covers (at most audit.MAX_RANGE) and returns records in
order. Rows are only ever inserted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pitcrew.audit import (
    TOKEN_QUERY,
    TOKEN_SINCE,
    TOKEN_UNTIL,
    AuditQuery,
    AuditRecord,
)
from pitcrew.azure.tables.keys import table_key
from pitcrew.azure.tables.paging import query_page
from pitcrew.azure.tables.payload import pack, unpack
from pitcrew.errors import InvalidInput
from pitcrew.http.paging import (
    CONTINUATION_PARAM,
    MAX_LIMIT,
    NOT_OURS,
    Page,
    decode_token,
    encode_token,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_TABLE_KEYS = frozenset({"PartitionKey", "RowKey"})


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
                **pack("Details", json.dumps(record.details, default=str, sort_keys=True)),
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
        page = query_page(
            self._table,
            " and ".join(conditions),
            parameters=params,
            limit=limit,
            continuation=resume,
        )
        token = None
        if page.continuation is not None:
            state = decode_token(page.continuation) or {}
            token = encode_token({**state, TOKEN_QUERY: query.fingerprint(),
                                  TOKEN_SINCE: query.since.isoformat(),
                                  TOKEN_UNTIL: query.until.isoformat()})
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


def _resume_from(
    continuation: Mapping[str, Any] | None, query: AuditQuery
) -> dict[str, Any] | None:
    """Table storage's resume position out of a token issued for `query`."""
    if not continuation:
        return None
    table_state = {k: v for k, v in continuation.items() if k in _TABLE_KEYS}
    extra = set(continuation) - _TABLE_KEYS - {TOKEN_QUERY, TOKEN_SINCE, TOKEN_UNTIL}
    if extra or not isinstance(table_state.get("PartitionKey"), str):
        raise InvalidInput(CONTINUATION_PARAM, NOT_OURS)
    if continuation.get(TOKEN_QUERY) != query.fingerprint():
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
        details=json.loads(unpack("Details", row, "{}")),
        time=row["Time"],
        record_id=row["RowKey"].split("-", 1)[1],
    )
