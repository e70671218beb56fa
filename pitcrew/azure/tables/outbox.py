"""OutboxStore (pitcrew.ports) over the `<prefix>outbox` table: PartitionKey = channel,
RowKey = notification id, every update conditional on the row's ETag."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pitcrew.azure.tables.keys import row_etag, table_key
from pitcrew.azure.tables.paging import query_page, where
from pitcrew.azure.tables.payload import pack, unpack
from pitcrew.errors import Conflict
from pitcrew.http.paging import Page
from pitcrew.notify.model import Notification, OutboxEntry, UnreadableRow

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_COLUMNS = {
    "status": "Status", "attempts": "Attempts", "last_error": "LastError",
    "next_attempt_at": "NextAttemptAt", "lease_until": "LeaseUntil",
    "delivered_at": "DeliveredAt",
}


class TableOutboxStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def insert(self, channel: str, notification: Notification, *, now: datetime,
               lease_until: datetime) -> OutboxEntry:
        from azure.core.exceptions import ResourceExistsError  # SDK on first use (cold start)

        partition, row = table_key(channel), table_key(notification.id)
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": row,
            "Channel": channel,
            **pack("Payload", json.dumps(notification.to_dict())),
            "Status": "pending",
            "Attempts": 0,
            "NextAttemptAt": now,
            "LeaseUntil": lease_until,
            "CreatedAt": now,
            "LastError": "",
        }
        try:
            meta = self._table.create_entity(entity)
        except ResourceExistsError:
            return _entry(self._table.get_entity(partition, row))
        entity["etag"] = meta["etag"]
        entry = _entry(entity)
        entry.created = True
        return entry

    def update(self, entry: OutboxEntry, *, status: str | None = None,
               attempts: int | None = None, last_error: str | None = None,
               next_attempt_at: datetime | None = None, lease_until: datetime | None = None,
               delivered_at: datetime | None = None) -> None:
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError  # SDK on first use
        from azure.data.tables import UpdateMode  # SDK on first use

        changes = {"status": status, "attempts": attempts, "last_error": last_error,
                   "next_attempt_at": next_attempt_at, "lease_until": lease_until,
                   "delivered_at": delivered_at}
        entity: dict[str, Any] = {
            "PartitionKey": table_key(entry.channel),
            "RowKey": table_key(entry.notification.id),
        }
        entity.update({_COLUMNS[k]: v for k, v in changes.items() if v is not None})
        try:
            meta = self._table.update_entity(entity, mode=UpdateMode.MERGE, etag=entry.etag,
                                             match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            raise Conflict(f"outbox row {entry.channel}/{entry.notification.id!r} changed "
                           "under us") from None
        entry.etag = meta["etag"]
        if attempts is not None:
            entry.attempts = attempts

    def due(self, now: datetime, *, limit: int) -> Iterator[OutboxEntry | UnreadableRow]:
        rows = self._table.query_entities(
            "Status eq 'pending' and NextAttemptAt le @now and LeaseUntil le @now",
            parameters={"now": now},
        )
        for count, row in enumerate(rows):
            if count >= limit:
                return
            item: OutboxEntry | UnreadableRow
            try:
                item = _entry(row)
            except Exception as exc:
                item = _unreadable(row, exc)
            yield item

    def push_back(self, row: UnreadableRow, *, attempts: int, reason: str,
                  next_attempt_at: datetime, now: datetime) -> None:
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.data.tables import UpdateMode  # SDK on first use

        self._table.update_entity(
            {
                "PartitionKey": row.channel_key,
                "RowKey": row.row_key,
                "Attempts": attempts,
                "LastError": reason,
                "NextAttemptAt": next_attempt_at,
                "LeaseUntil": now,
            },
            mode=UpdateMode.MERGE,
            etag=row.etag,
            match_condition=MatchConditions.IfNotModified,
        )

    def pending(self) -> list[OutboxEntry]:
        return [_entry(r) for r in self._table.query_entities("Status eq 'pending'")]

    def get(self, channel: str, notification_id: str) -> OutboxEntry | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        try:
            return _entry(self._table.get_entity(table_key(channel), table_key(notification_id)))
        except ResourceNotFoundError:
            return None

    def page(self, *, limit: int, status: str | None = None, channel: str | None = None,
             continuation: Mapping[str, Any] | None = None) -> Page[OutboxEntry]:
        """Rows by receiver and notification id; `status` pending (never attempted), failed
        (attempted, still pending) or delivered."""
        parameters: dict[str, Any] = {}
        query = "RowKey ne ''"
        if status == "delivered":
            query += " and Status eq 'delivered'"
        elif status == "failed":
            query += " and Status eq 'pending' and Attempts ge 1"
        elif status == "pending":
            query += " and Status eq 'pending' and Attempts eq 0"
        query = where(query, parameters, ("PartitionKey", "eq", "p",
                                          table_key(channel) if channel else None))
        page = query_page(self._table, query, parameters=parameters, limit=limit,
                          continuation=continuation)
        return page.map(_entry)


def _entry(row: Any) -> OutboxEntry:
    etag = row["etag"] if "etag" in row else (row_etag(row) or "")
    return OutboxEntry(
        channel=row["Channel"],
        notification=Notification.from_dict(json.loads(unpack("Payload", row))),
        status=row["Status"],
        attempts=int(row["Attempts"]),
        next_attempt_at=row["NextAttemptAt"],
        etag=etag,
        last_error=row.get("LastError", ""),
        lease_until=row.get("LeaseUntil"),
        created_at=row.get("CreatedAt"),
        delivered_at=row.get("DeliveredAt"),
    )


def _unreadable(row: Any, error: Exception) -> UnreadableRow:
    try:
        attempts = int(row.get("Attempts") or 0)
    except (TypeError, ValueError):
        attempts = 0
    row_key = str(row.get("RowKey", ""))
    return UnreadableRow(key=unquote(row_key), channel_key=str(row.get("PartitionKey", "")),
                         row_key=row_key, attempts=attempts, etag=row_etag(row) or "",
                         error=error)
