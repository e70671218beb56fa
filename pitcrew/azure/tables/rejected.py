"""RejectedEventLog (pitcrew.ports) over the `<prefix>rejectedevents` table: one partition
per UTC day; both keys count down, so the table's own order is newest first."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any

from pitcrew.azure.tables.paging import query_page
from pitcrew.http.paging import Page
from pitcrew.intake.rejected import RejectedEvent

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_MAX_TICKS = 10**19
_MAX_DAY = 99_999_999


class TableRejectedEventLog:
    """RejectedEventLog over the `<prefix>rejectedevents` table."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def add(self, rejected: RejectedEvent) -> None:
        moment = rejected.received_at.astimezone(UTC)
        ticks = int(moment.timestamp() * 1_000_000)
        self._table.create_entity({
            # Both keys count down: the table's key order is newest first.
            "PartitionKey": f"{_MAX_DAY - int(moment.strftime('%Y%m%d')):08d}",
            "RowKey": f"{_MAX_TICKS - ticks:020d}-{rejected.record_id}",
            "ReceivedAt": moment,
            "EventId": rejected.id,
            "Source": rejected.source,
            "Schema": rejected.schema,
            "EventType": rejected.type,
            "Subject": rejected.subject,
            "Function": rejected.function,
            "Field": rejected.field,
            "Problem": rejected.problem,
            "Envelope": rejected.envelope,
        })

    def page(
        self, *, limit: int, continuation: Mapping[str, Any] | None = None
    ) -> Page[RejectedEvent]:
        """At most `limit` rejections, newest first, and a token for the rest."""
        page = query_page(self._table, "PartitionKey ge '0'", limit=limit,
                          continuation=continuation)
        return page.map(_from_row)


def _from_row(row: Mapping[str, Any]) -> RejectedEvent:
    return RejectedEvent(
        id=row.get("EventId", ""),
        source=row.get("Source", ""),
        schema=row.get("Schema", ""),
        type=row.get("EventType", ""),
        subject=row.get("Subject", ""),
        field=row.get("Field", ""),
        problem=row.get("Problem", ""),
        envelope=row.get("Envelope", ""),
        function=row.get("Function", ""),
        received_at=row["ReceivedAt"],
        record_id=str(row["RowKey"]).split("-", 1)[-1],
    )
