"""What a failed message is, wherever it failed: the body, every property, why it failed."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["failed", "replaying", "replayed", "archived", "superseded"]
SourceKind = Literal["storage-queue", "servicebus", "eventgrid-blob"]

# Service Bus puts these on a dead-lettered message; a replay must not carry them back.
DEADLETTER_PROPERTIES = frozenset({
    "DeadLetterReason", "DeadLetterErrorDescription", "DeadLetterSource",
})
REPLAY_OF = "pitcrew-replay-of"
REPLAY_ATTEMPT = "pitcrew-replay-attempt"
POSSIBLE_DUPLICATE = "pitcrew-possible-duplicate"
ORIGINAL_MESSAGE_ID = "pitcrew-original-message-id"
EDIT_OF = "pitcrew-edit-of"

# The broker properties a message carries besides its body and application properties.
SYSTEM_PROPERTIES = (
    "message_id", "correlation_id", "subject", "content_type", "session_id", "partition_key",
    "reply_to", "reply_to_session_id", "to", "time_to_live",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class FailedMessage:
    """One failed message in the store. `body` is loaded only when asked for."""

    id: str
    group: str
    source: str
    source_kind: SourceKind
    entity: str
    source_key: str
    reason: str
    description: str
    cause: str
    properties: dict[str, Any] = field(default_factory=dict)
    application_properties: dict[str, Any] = field(default_factory=dict)
    delivery_count: int | None = None
    enqueued_time: datetime | None = None
    sequence_number: int | None = None
    body_size: int = 0
    body_sha256: str = ""
    ingested_at: datetime = field(default_factory=utcnow)
    status: Status = "failed"
    replay_job: str | None = None
    replay_attempt: int = 0
    replayed_at: datetime | None = None
    replayed_to: str | None = None
    sent_message_id: str | None = None
    possible_duplicate: bool = False
    edit_of: str | None = None
    edited_as: str | None = None
    edited_by: str | None = None
    archived_at: datetime | None = None
    archived_by: str | None = None
    preview: str | None = None  # the decoded body's first characters, escaped (bodies.py)
    etag: str | None = None

    def summary(self) -> dict[str, Any]:
        """Metadata for operators: never the body."""
        return {
            "id": self.id,
            "group": self.group,
            "source": self.source,
            "entity": self.entity,
            "status": self.status,
            "reason": self.reason,
            "description": self.description,
            "deliveryCount": self.delivery_count,
            "enqueuedTime": _iso(self.enqueued_time),
            "sequenceNumber": self.sequence_number,
            "ingestedAt": _iso(self.ingested_at),
            "bodySize": self.body_size,
            "bodySha256": self.body_sha256,
            "preview": self.preview,
            "properties": {k: v for k, v in self.properties.items() if v is not None},
            "applicationProperties": {k: show_value(v) for k, v in
                                      self.application_properties.items()},
            "replay": {
                "job": self.replay_job, "attempt": self.replay_attempt,
                "replayedAt": _iso(self.replayed_at), "to": self.replayed_to,
                "sentMessageId": self.sent_message_id,
                "possibleDuplicate": self.possible_duplicate,
            },
            "editOf": self.edit_of,
            "editedAs": self.edited_as,
            "archivedAt": _iso(self.archived_at),
            "archivedBy": self.archived_by,
        }

    def copy(self, **changes: Any) -> FailedMessage:
        return replace(self, **changes)


@dataclass
class Captured:
    """A message read from a source, not yet stored. `settle` removes it at the source and is
    called only after the store holds it."""

    message: FailedMessage
    body: bytes
    settle: Callable[[], None]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def show_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, datetime | uuid.UUID):
        return str(value)
    return value


# ---------------------------------------------------------------- typed application properties
# Service Bus application properties are typed (string, integer, double, boolean, binary,
# timestamp, uuid); a replay must send back the same types, so the store keeps the type.

def encode_properties(props: Mapping[Any, Any]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for key, value in props.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        match value:
            case None:
                out.append([name, "n", None])
            case bool():
                out.append([name, "b", value])
            case int():
                out.append([name, "i", value])
            case float():
                out.append([name, "f", value])
            case bytes():
                out.append([name, "x", base64.b64encode(value).decode()])
            case datetime():
                out.append([name, "d", value.isoformat()])
            case uuid.UUID():
                out.append([name, "u", str(value)])
            case _:
                out.append([name, "s", str(value)])
    return out


def decode_properties(encoded: list[list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind, raw in encoded:
        match kind:
            case "x":
                out[name] = base64.b64decode(raw)
            case "d":
                out[name] = datetime.fromisoformat(raw)
            case "u":
                out[name] = uuid.UUID(raw)
            case "f":
                out[name] = float(raw)
            case _:
                out[name] = raw
    return out


def plain_properties(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Application properties given as JSON by an operator (edit): strings, numbers, booleans."""
    from pitcrew.errors import InvalidInput

    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput("applicationProperties", "keys must be non-empty strings")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidInput(f"applicationProperties.{key}",
                               "must be a string, number, boolean or null")
        out[key] = value
    return out
