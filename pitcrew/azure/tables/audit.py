"""AuditLog (pitcrew.ports) over the `<prefix>audit` table.

The partition is the UTC day and the row key starts with the time, so a time-range query is one
partition-range query over the days it covers (at most audit.MAX_RANGE) and returns records in
order. Rows are only ever inserted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pitcrew.audit import (
    TOKEN_QUERY,
    TOKEN_SINCE,
    TOKEN_UNTIL,
    AuditQuery,
    AuditRecord,
)
from pitcrew.azure.tables import transactions
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
        """Insert the record now, or (inside `deferred()` on this context) when the deferred
        block ends."""
        entity = _entity(record)
        pending = _DEFERRED.get()
        if pending is not None and pending.log is self:
            pending.add(entity)
            return
        self._table.create_entity(entity)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold the records appended in this block (on this context and the contexts copied
        from it, e.g. a delivery's worker threads) and insert them when it ends, success or
        not, a transaction of up to 100 per day instead of one round trip each. Nested blocks
        write at the outermost one's end."""
        if _DEFERRED.get() is not None:
            yield
            return
        pending = _Pending(self)
        token = _DEFERRED.set(pending)
        try:
            yield
        finally:
            _DEFERRED.reset(token)
            self._insert_many(pending.take())

    def _insert_many(self, entities: list[dict[str, Any]]) -> None:
        from azure.core.exceptions import ResourceExistsError  # SDK on first use (cold start)
        from azure.data.tables import TableTransactionError  # SDK on first use

        for chunk in transactions.chunked([("create", e) for e in entities]):
            try:
                transactions.submit(self._table, chunk)
            except TableTransactionError:
                # Row by row: a row already there (an earlier try of this very block) stays.
                for _, entity in chunk:
                    with suppress(ResourceExistsError):
                        self._table.create_entity(entity)

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


def _entity(record: AuditRecord) -> dict[str, Any]:
    time = record.time.astimezone(UTC)
    return {
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


class _Pending:
    """The records a `deferred()` block holds; appended to from several threads."""

    def __init__(self, log: TableAuditLog) -> None:
        self.log = log
        self._lock = threading.Lock()
        self._entities: list[dict[str, Any]] = []

    def add(self, entity: dict[str, Any]) -> None:
        with self._lock:
            self._entities.append(entity)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self._entities = self._entities, []
        return taken


_DEFERRED: ContextVar[_Pending | None] = ContextVar("pitcrew_audit_deferred", default=None)
