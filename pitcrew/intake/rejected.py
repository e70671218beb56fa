"""Events the Event Grid trigger refused as permanently malformed ("poison"), kept for inspection.

Event Grid retries any delivery the host answers with a 5xx, for up to 24 hours; an event that
can never be parsed would fail all 30 attempts and reach the dead-letter container a day later.
Instead the trigger acknowledges it at once, after recording it here (the envelope, the field
and the problem) and in the audit trail (`intake.rejected`). Transient faults still raise and
are retried. `GET /api/events/rejected` (role Reader) lists the rows, newest first.

They are kept by a RejectedEventLog (pitcrew.ports; pitcrew.azure.tables.rejected), newest
first. The stored envelope is cut to 32,000 characters and holds what the sender sent: Key Vault and
Service Bus events carry names and ids, never a secret value.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any

from pitcrew.errors import InvalidInput
from pitcrew.events import BindingEvent

ACTION = "intake.rejected"
MAX_ENVELOPE_CHARS = 32_000


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
    def of(cls, binding: BindingEvent, error: InvalidInput, *, function: str = "") -> RejectedEvent:
        """From the plain fields a trigger handed over (any of them may be missing or odd)."""
        fields = binding.as_dict()
        schema = str(binding.schema or "eventgrid")
        source = binding.source if schema == "cloudevents" else binding.topic
        envelope = {key: fields[key] for key in sorted(fields)}
        return cls(
            id=_text(binding.id or ""),
            source=_text(source or binding.topic or binding.source or ""),
            schema=schema,
            type=_text(binding.event_type or "", 300),
            subject=_text(binding.subject or ""),
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


