"""RejectedEventLog (pitcrew.ports) over the `<prefix>rejectedevents` table: one partition
per UTC day; both keys count down, so the table's own order is newest first."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pitcrew.azure.tables.paging import query_page
from pitcrew.http.paging import Page
from pitcrew.intake.rejected import RejectedEvent

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_MAX_TICKS = 10**19
_MAX_DAY = 99_999_999
_EARLIEST = datetime(1601, 1, 1, tzinfo=UTC)  # Edm.DateTime's first day


class TableRejectedEventLog:
    """RejectedEventLog over the `<prefix>rejectedevents` table."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def add(self, rejected: RejectedEvent) -> None:
        moment = rejected.received_at.astimezone(UTC)
        ticks = int(moment.timestamp() * 1_000_000)
        self._table.create_entity({
            # Both keys count down: the table's key order is newest first.
            "PartitionKey": _day_key(moment),
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
        self, *, limit: int, continuation: Mapping[str, Any] | None = None,
        since: datetime | None = None, until: datetime | None = None,
        source: str | None = None, type: str | None = None, function: str | None = None,
    ) -> Page[RejectedEvent]:
        """At most `limit` rejections, newest first, and a token for the rest. A time range
        reads only its days' partitions; the other filters are the service's."""
        # Table storage dates start at 1601: an earlier bound is no bound at all.
        since = since if since is not None and since > _EARLIEST else None
        until = until if until is None or until > _EARLIEST else _EARLIEST
        clauses = ["PartitionKey ge @low", "PartitionKey le @high"]
        parameters: dict[str, Any] = {
            "low": _day_key(until) if until else "0",
            "high": _day_key(since) if since else f"{_MAX_DAY:08d}",
        }
        for name, column, value in (("since", "ReceivedAt ge", since),
                                    ("until", "ReceivedAt le", until),
                                    ("source", "Source eq", source),
                                    ("type", "EventType eq", type),
                                    ("function", "Function eq", function)):
            if value is not None:
                clauses.append(f"{column} @{name}")
                parameters[name] = value
        page = query_page(self._table, " and ".join(clauses), parameters=parameters,
                          limit=limit, continuation=continuation)
        return page.map(_from_row)


def _day_key(moment: datetime) -> str:
    """The partition of a UTC day (days count down, so later days have smaller keys)."""
    return f"{_MAX_DAY - int(moment.astimezone(UTC).strftime('%Y%m%d')):08d}"


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
