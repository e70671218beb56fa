"""Events the Event Grid trigger refused as permanently malformed ("poison"), kept for inspection.

Event Grid retries any delivery the host answers with a 5xx, for up to 24 hours; an event that
can never be parsed would fail all 30 attempts and reach the dead-letter container a day later.
Instead the trigger acknowledges it at once, after recording it here (the envelope, the field
and the problem) and in the audit trail (`intake.rejected`). Transient faults still raise and
are retried. `GET /api/events/rejected` (role Reader) lists the rows, newest first.

Rows live in `<prefix>rejectedevents`, one partition per UTC day; both keys count down, so
the table's own order is newest first.
The stored envelope is cut to 32,000 characters and holds what the sender sent: Key Vault and
Service Bus events carry names and ids, never a secret value.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pitcrew.api import HttpResult, http_errors
from pitcrew.audit import AuditRecord, app_identity
from pitcrew.errors import InvalidInput

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from pitcrew.paging import Page
    from pitcrew.services import Services

log = logging.getLogger(__name__)

TABLE = "rejectedevents"
ACTION = "intake.rejected"
MAX_ENVELOPE_CHARS = 32_000
_MAX_TICKS = 10**19
_MAX_DAY = 99_999_999


def _text(value: Any, limit: int = 1000) -> str:
    """Any value as a string a Table property holds (unpaired surrogates escaped), cut."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


@dataclass(frozen=True)
class RejectedEvent:
    """One poison event: who it claimed to be, what was wrong with it, and what it held."""

    id: str
    source: str
    schema: str
    type: str
    subject: str
    field: str
    problem: str
    envelope: str
    function: str = ""
    received_at: datetime = dataclass_field(default_factory=lambda: datetime.now(UTC))
    record_id: str = dataclass_field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(
        cls, fields: Mapping[str, Any], error: InvalidInput, *, function: str = ""
    ) -> RejectedEvent:
        """From the plain fields a trigger handed over (any of them may be missing or odd)."""
        schema = str(fields.get("schema") or "eventgrid")
        source = fields.get("source") if schema == "cloudevents" else fields.get("topic")
        envelope = {key: fields.get(key) for key in sorted(fields)}
        return cls(
            id=_text(fields.get("id") or ""),
            source=_text(source or fields.get("topic") or fields.get("source") or ""),
            schema=schema,
            type=_text(fields.get("event_type") or "", 300),
            subject=_text(fields.get("subject") or ""),
            field=_text(error.field, 300),
            problem=_text(error.problem),
            envelope=_text(json.dumps(envelope, default=str), MAX_ENVELOPE_CHARS),
            function=function,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.record_id,
            "receivedAt": self.received_at.isoformat(),
            "eventId": self.id,
            "source": self.source,
            "schema": self.schema,
            "eventType": self.type,
            "subject": self.subject,
            "function": self.function,
            "field": self.field,
            "problem": self.problem,
            "envelope": self.envelope,
        }


class RejectedEventStore:
    """Rejected events over the `<prefix>rejectedevents` table."""

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

    def page(self, *, limit: int, continuation: Mapping[str, Any] | None = None) -> Page[Any]:
        """At most `limit` rejections, newest first, and a token for the rest."""
        from azure.core.exceptions import HttpResponseError

        from pitcrew.paging import CONTINUATION_PARAM, query_page

        try:
            page = query_page(
                self._table, "PartitionKey ge '0'", limit=limit, continuation=continuation
            )
        except HttpResponseError as exc:
            if continuation is not None and exc.status_code == 400:
                raise InvalidInput(
                    CONTINUATION_PARAM, "is not a continuation token pitcrew issued"
                ) from None
            raise
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


def rejected_store(services: Services) -> RejectedEventStore:
    from pitcrew.runtime import get_runtime

    runtime = services.runtime or get_runtime()
    return RejectedEventStore(runtime.table(TABLE))


def reject(
    fields: Mapping[str, Any], error: InvalidInput, services: Services, *, function: str = ""
) -> RejectedEvent:
    """Record a poison event (store row, audit record, one warning line). Raises if storage
    fails, so the platform retries: a rejection is only acknowledged once it is recorded."""
    rejected = RejectedEvent.of(fields, error, function=function)
    rejected_store(services).add(rejected)
    services.audit.append(AuditRecord(
        actor=app_identity(),
        action=ACTION,
        target=rejected.source or "events",
        outcome="failed",
        correlation_id=rejected.id,
        details={
            "field": rejected.field,
            "problem": rejected.problem,
            "eventType": rejected.type,
            "schema": rejected.schema,
            "rejectedEvent": rejected.record_id,
        },
    ))
    log.warning(
        "event %r (%s) from %r rejected, not retried: %s; see GET /api/events/rejected",
        rejected.id[:200], rejected.type[:100], rejected.source[:200], error,
    )
    return rejected


@http_errors
def list_rejected(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/events/rejected?limit=&continuation= (role Reader): poison events, newest
    day first, `{"rejected": [...], "continuation": token | null}`."""
    from pitcrew.auth import Role, require
    from pitcrew.paging import limit_param, token_param
    from pitcrew.services import get_services

    require(headers, Role.READER)
    limit = limit_param(query)
    continuation = token_param(query)
    page = rejected_store(get_services()).page(limit=limit, continuation=continuation)
    return HttpResult(200, page.map(lambda item: item.to_dict()).body("rejected"))
