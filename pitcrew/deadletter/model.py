"""What a failed message is, wherever it failed: the body, every property, why it failed."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from pitcrew.errors import InvalidInput, RetryLater
from pitcrew.errors import NotFound as NotFound  # re-exported: the dead-letter code's import
from pitcrew.state import utcnow

Status = Literal["failed", "replaying", "replayed", "archived", "superseded"]
STATUSES = ("failed", "replaying", "replayed", "archived", "superseded")
# Rows one filtered page examines at most when the filter reads what Table storage cannot
# (text in a body or description, an application property): the page may then come back short,
# with a continuation to go on from where it stopped.
SCAN_BUDGET = 5000
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


@dataclass
class FailedMessage:
    """One failed message in the store. `body` is held only when the store keeps it in the
    row (small bodies: no extra round trip); otherwise the store loads it when asked for."""

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
    body: bytes | None = field(default=None, repr=False, compare=False)  # never in summary()

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
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput("applicationProperties", "keys must be non-empty strings")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidInput(f"applicationProperties.{key}",
                               "must be a string, number, boolean or null")
        out[key] = value
    return out


@dataclass
class Target:
    """Where a replay goes: a storage queue or a Service Bus entity, and how to reach it."""

    kind: str
    name: str  # queue name, or `<queue>` / `topics/<topic>` for Service Bus
    namespace: str = ""
    connection: str | None = None
    subscription: str | None = None  # replaying a subscription's dead letters to its topic

    @property
    def label(self) -> str:
        if self.kind == "queue":
            return f"queue:{self.name}"
        return f"servicebus:{self.namespace.split('.', 1)[0]}/{self.name}"


def parse_target(text: str) -> Target:
    """'queue:<name>[@<connection>]' or 'servicebus:<namespace>/<queue>|topics/<topic>[@<conn>]'."""
    raw, _, connection = text.strip().partition("@")
    kind, _, rest = raw.partition(":")
    if kind == "queue" and rest:
        return Target("queue", rest, connection=connection or "AzureWebJobsStorage")
    if kind == "servicebus" and "/" in rest:
        namespace, _, entity = rest.partition("/")
        if entity:
            return Target("servicebus", entity, namespace=namespace, connection=connection or None)
    raise InvalidInput("target", f"{text[:100]!r} must be 'queue:<name>', "
                       "'servicebus:<namespace>/<queue>' or "
                       "'servicebus:<namespace>/topics/<topic>'")


class TargetMissing(Exception):
    """Raised by a Sender (pitcrew/azure) when its target does not exist: no retry can make
    it appear, and pitcrew never creates a resource in the workload. The job fails at once,
    naming the target."""


class StaleMessage(RetryLater):
    """Another writer changed the message since it was read."""


@dataclass
class Group:
    id: str
    source: str
    entity: str
    cause: str
    reason: str
    description: str
    count: int
    first_seen: datetime
    last_seen: datetime
    notice_level: int = 0
    notice_sent: int = 0
    etag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "source": self.source, "entity": self.entity, "cause": self.cause,
            "sampleReason": self.reason, "sampleDescription": self.description,
            "count": self.count, "firstSeen": self.first_seen.isoformat(),
            "lastSeen": self.last_seen.isoformat(),
        }


@dataclass(frozen=True)
class MessageFilter:
    """Which of a group's messages a listing wants. Status and ingest time are asked of the
    store's query; text (in the reason, description or decoded body, case-insensitive) and
    application properties are checked here, within SCAN_BUDGET rows per page."""

    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def reads_rows(self) -> bool:
        return bool(self.text or self.properties)

    def metadata_match(self, m: FailedMessage) -> bool | None:
        """False: excluded; True: included; None: only the body can tell (text search)."""
        for key, wanted in self.properties:
            if key not in m.application_properties or \
                    property_text(m.application_properties[key]) != wanted:
                return False
        if not self.text:
            return True
        needle = self.text.casefold()
        if needle in m.reason.casefold() or needle in m.description.casefold():
            return True
        return None


def property_text(value: Any) -> str:
    """An application property as an operator types it: `true`, `3`, `0.5`, `contoso`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


@dataclass(frozen=True)
class Arrival:
    """How one ingest changed a group: created it, or moved its count from before to after."""

    group: Group
    created: bool
    before: int
