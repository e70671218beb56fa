"""The append-only audit trail: who asked for what, on which target, with what outcome.

Records are only ever inserted (never updated or deleted by pitcrew). The partition is the UTC
day, the row key starts with the time, so a time-range query reads only the days it covers and
returns records in order. Details must never contain a secret value: callers pass names,
versions and ids only.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pitcrew.state import table_key

if TYPE_CHECKING:
    from azure.data.tables import TableClient

Outcome = Literal["succeeded", "failed", "skipped", "planned", "queued"]


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


class AuditLog(Protocol):
    def append(self, record: AuditRecord) -> None: ...

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

    def query(
        self, *, since: datetime, until: datetime, target: str | None = None, limit: int = 1000
    ) -> Iterator[AuditRecord]:
        """Records with since <= time < until (oldest first), optionally for one target."""
        since, until = since.astimezone(UTC), until.astimezone(UTC)
        returned = 0
        for day in _days(since.date(), until.date()):
            query = "PartitionKey eq @day and Time ge @since and Time lt @until"
            params: dict[str, Any] = {"day": day.strftime("%Y%m%d"), "since": since, "until": until}
            if target is not None:
                query += " and TargetKey eq @target"
                params["target"] = table_key(target)
            for row in self._table.query_entities(query, parameters=params):
                yield _record(row)
                returned += 1
                if returned >= limit:
                    return


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


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
