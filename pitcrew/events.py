"""Event intake: Event Grid schema, CloudEvents 1.0, the Common Alert Schema and the handshakes.

Everything that arrives is turned into a typed event here, or rejected with one error type,
`InvalidInput`, whose message names the field and the problem. Key Vault event data is parsed
tolerantly, because Azure documents (and sends) keys with stray spaces, values with leading
spaces and NBF/EXP as either strings or numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any, Literal
from urllib.parse import unquote

from pitcrew.errors import InvalidInput

MAX_BODY_BYTES = 1024 * 1024
"""Event Grid caps a delivery at 1 MB; anything larger is not from Event Grid or Azure Monitor."""
MAX_JSON_DEPTH = 64
"""How deep arrays and objects may nest: the .NET JSON readers' default (the Functions host's
too). Azure's payloads nest under 10 deep; deeper input is refused before it is parsed."""

VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
COMMON_ALERT_SCHEMA_ID = "azureMonitorCommonAlertSchema"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
CLOUDEVENTS_BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"

KEYVAULT_EVENT_PREFIX = "Microsoft.KeyVault."
KeyVaultObjectType = Literal["Secret", "Key", "Certificate"]


# --------------------------------------------------------------------------- typed events


@dataclass(frozen=True, slots=True)
class Event:
    """An event in either schema, reduced to the fields both have."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: Any
    schema: Literal["eventgrid", "cloudevents"]
    data_version: str = ""

    @property
    def claim_key(self) -> str:
        """The event's identity per its schema, CloudEvents `source` + `id` or Event Grid
        `topic` + `id` (both kept in `source`), as a fixed-length, table-safe digest: what
        deduplication claims. Another publisher's event with that id is another event."""
        pair = json.dumps([self.source, self.id], ensure_ascii=True)
        return sha256(pair.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SubscriptionValidation:
    """Event Grid's validation handshake; answered with `{"validationResponse": code}`."""

    id: str
    validation_code: str
    validation_url: str | None


@dataclass(frozen=True, slots=True)
class KeyVaultObjectEvent:
    """A Key Vault secret, key or certificate event (NearExpiry, Expired, NewVersionCreated...)."""

    event: Event
    vault_name: str
    object_type: KeyVaultObjectType
    object_name: str
    version: str
    object_id: str
    not_before: datetime | None
    expires: datetime | None

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def condition(self) -> str:
        """`NearExpiry`, `Expired`, `NewVersionCreated`... without the object type."""
        suffix = self.event.type.removeprefix(KEYVAULT_EVENT_PREFIX)
        for kind in ("Certificate", "Secret", "Key"):
            if suffix.startswith(kind):
                return suffix.removeprefix(kind)
        return suffix

    @property
    def target(self) -> str:
        """`vault/secrets/name`: how audit records and notifications name the object."""
        return f"{self.vault_name}/{self.object_type.lower()}s/{self.object_name}"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An Azure Monitor alert in the Common Alert Schema."""

    alert_id: str
    rule: str
    severity: str
    signal_type: str
    condition: Literal["Fired", "Resolved"]
    monitoring_service: str
    target_ids: tuple[str, ...]
    fired_at: datetime
    resolved_at: datetime | None
    description: str
    essentials: Mapping[str, Any] = field(repr=False)
    alert_context: Any = field(repr=False)
    custom_properties: Mapping[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        """The delivery identity: the same alert firing and resolving are two deliveries."""
        moment = self.resolved_at if self.condition == "Resolved" else self.fired_at
        stamp = moment.isoformat() if moment else ""
        return f"{self.alert_id}|{self.condition}|{stamp}"

    @property
    def dedup_key(self) -> str:
        return self.alert_id

    @property
    def short_id(self) -> str:
        return self.alert_id.rsplit("/", 1)[-1]


# --------------------------------------------------------------------------- raw JSON


def load_json(body: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a request body, refusing oversize, over-nested and non-JSON input with a precise
    message. Every HTTP body pitcrew reads goes through here."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    size = len(raw)
    if size > MAX_BODY_BYTES:
        raise InvalidInput("body", f"is {size} bytes; the limit is {MAX_BODY_BYTES} (1 MB)")
    if not raw.strip():
        raise InvalidInput("body", "is empty; expected JSON")
    if json_depth(raw, limit=max_depth) > max_depth:
        raise InvalidInput(
            "body", f"nests arrays and objects deeper than {max_depth} levels (the limit)"
        )
    try:
        return json.loads(raw, parse_constant=_not_json_constant)
    except UnicodeDecodeError as exc:
        raise InvalidInput("body", f"is not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            "body", f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # an integer of more than 4,300 digits (int()'s limit)
        raise InvalidInput("body", f"is not valid JSON: {str(exc)[:120]}") from None
    except RecursionError:  # the depth scan bounds this; kept so no input can ever be a 500
        raise InvalidInput("body", f"nests deeper than {max_depth} levels") from None


def _not_json_constant(name: str) -> Any:
    """NaN and Infinity: Python's json reads them, JSON (RFC 8259) and Azure do not."""
    raise ValueError(f"{name} is not a JSON number")


_NOT_STRUCTURE = bytes(set(range(256)) - set(b'[]{}"'))
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(raw: bytes, *, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep arrays and objects nest in `raw`, counted without parsing (brackets inside
    strings do not count). Linear, recursion-free and it stops one past the limit, so it is
    cheap on hostile input."""
    # Escaped backslashes, then escaped quotes, go first (pairs from the left, as JSON reads
    # them); then only brackets and quotes are kept, and every other quote-delimited run is a
    # string's inside.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw
    brackets = b"".join(unescaped.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    depth = deepest = 0
    for char in brackets:
        depth += _DEPTH_STEP[char]
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


def json_or_none(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON that arrives inside something else (a string field of an alert, a dead-letter
    body or blob): its value, or None when it is not JSON or nests deeper than `max_depth`.
    Never raises: such a field is read for what it may add, and Python's parser would
    overflow its stack (a 500) on a string of a few thousand brackets."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if json_depth(raw, limit=max_depth) > max_depth:
        return None
    try:
        return json.loads(raw, parse_constant=_not_json_constant)
    except (ValueError, RecursionError):
        return None


# --------------------------------------------------------------------------- field helpers


def _require_object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(where, f"must be a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
        case Mapping():
            return "an object"
    return type(value).__name__


# An envelope's ids, types, sources and subjects become Table properties (claims, audit
# records: at most 32K characters each) and notification text; Azure's own are resource-id
# sized. Longer is refused while parsing, before anything is claimed or sent.
MAX_ENVELOPE_TEXT = 4096


def _string(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True,
            limit: int | None = MAX_ENVELOPE_TEXT) -> str:
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{where}.{key}", "is required")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{where}.{key}", f"must be a string, got {_json_type(value)}")
    _check_unicode(value, f"{where}.{key}")
    value = value.strip()
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"{where}.{key}",
                           f"is {len(value)} characters long; the limit is {limit}")
    return value


def _check_unicode(value: str, where: str) -> None:
    """JSON may escape an unpaired surrogate (`"\\ud800"`): not text, so not an id or a name."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(where, "is not valid Unicode text (an unpaired surrogate)") from None


def _timestamp(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> datetime:
    raw = obj.get(key)
    if raw is None or raw == "":
        if required:
            raise InvalidInput(f"{where}.{key}", "is required")
        return datetime.fromtimestamp(0, UTC)
    parsed = _parse_time(raw)
    if parsed is None:
        raise InvalidInput(f"{where}.{key}", f"is not an ISO 8601 timestamp: {str(raw)[:64]!r}")
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-23:59 is past the last moment Python can hold
        in_utc = None
    if in_utc is None or not EARLIEST_TIME <= in_utc <= LATEST_TIME:
        raise InvalidInput(f"{where}.{key}", "must be a time between 1601 and 9999 UTC (what "
                                             "Table storage can hold)")
    return parsed


# Table storage's DateTime range (Edm.DateTime): an event's times become row properties.
EARLIEST_TIME = datetime(1601, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _epoch(value: Any, where: str) -> datetime | None:
    """NBF/EXP: seconds since the epoch as a number or a numeric string, or null."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvalidInput(where, "must be seconds since the epoch, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InvalidInput(
                where, f"must be seconds since the epoch, got {value.strip()[:32]!r}"
            ) from None
    if not isinstance(value, int | float):
        raise InvalidInput(where, f"must be seconds since the epoch, got {_json_type(value)}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInput(where, f"is out of range: {value}") from None


def _normalised_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """Keys stripped and case-folded; values stripped when strings (the documented quirks)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[str(key).strip().casefold()] = value.strip() if isinstance(value, str) else value
    return out


# --------------------------------------------------------------------------- envelopes


def _event_grid_event(raw: Any, where: str) -> Event | SubscriptionValidation:
    obj = _require_object(raw, where)
    event_type = _string(obj, "eventType", where)
    event_id = _string(obj, "id", where)
    if event_type == VALIDATION_EVENT_TYPE:
        data = _require_object(obj.get("data"), f"{where}.data")
        return SubscriptionValidation(
            id=event_id,
            validation_code=_string(data, "validationCode", f"{where}.data"),
            validation_url=_string(data, "validationUrl", f"{where}.data", required=False) or None,
        )
    return Event(
        id=event_id,
        type=event_type,
        source=_string(obj, "topic", where, required=False),
        subject=_string(obj, "subject", where, required=False),
        time=_timestamp(obj, "eventTime", where),
        data=obj.get("data"),
        schema="eventgrid",
        data_version=str(obj.get("dataVersion") or ""),
    )


def _cloud_event(raw: Any, where: str) -> Event:
    obj = _require_object(raw, where)
    spec = obj.get("specversion")
    if spec != "1.0":
        problem = "is required" if spec is None else f"must be '1.0', got {spec!r}"
        raise InvalidInput(f"{where}.specversion", problem)
    if "data_base64" in obj and "data" not in obj:
        raise InvalidInput(f"{where}.data_base64", "binary CloudEvents data is not accepted")
    return Event(
        id=_string(obj, "id", where),
        type=_string(obj, "type", where),
        source=_string(obj, "source", where),
        subject=_string(obj, "subject", where, required=False),
        time=_timestamp(obj, "time", where, required=False)
        if obj.get("time")
        else datetime.now(UTC),
        data=obj.get("data"),
        schema="cloudevents",
        data_version=str(obj.get("dataschema") or ""),
    )


def parse_event_grid_batch(payload: Any) -> list[Event | SubscriptionValidation]:
    """An Event Grid schema delivery: a JSON array of events (a lone object is tolerated)."""
    if isinstance(payload, Mapping):
        return [_event_grid_event(payload, "event")]
    if not isinstance(payload, list):
        raise InvalidInput("body", f"must be a JSON array of events, got {_json_type(payload)}")
    if not payload:
        raise InvalidInput("body", "is an empty array; expected at least one event")
    return [_event_grid_event(item, f"[{i}]") for i, item in enumerate(payload)]


def parse_cloud_events(payload: Any) -> list[Event]:
    """CloudEvents 1.0 in structured mode: one event, or a batch (a JSON array)."""
    if isinstance(payload, list):
        if not payload:
            raise InvalidInput("body", "is an empty batch; expected at least one CloudEvent")
        return [_cloud_event(item, f"[{i}]") for i, item in enumerate(payload)]
    return [_cloud_event(payload, "event")]


def parse_delivery(
    body: bytes | str, content_type: str = ""
) -> list[Event | SubscriptionValidation]:
    """Any delivery pitcrew takes over HTTP: Event Grid schema or CloudEvents, told apart by the
    content type and, failing that, by shape (`specversion` marks a CloudEvent)."""
    payload = load_json(body)
    media = content_type.split(";", 1)[0].strip().lower()
    if media in (CLOUDEVENTS_CONTENT_TYPE, CLOUDEVENTS_BATCH_CONTENT_TYPE):
        return list(parse_cloud_events(payload))
    first = payload[0] if isinstance(payload, list) and payload else payload
    if isinstance(first, Mapping) and "specversion" in first:
        return list(parse_cloud_events(payload))
    if isinstance(first, Mapping) and first.get("schemaId") == COMMON_ALERT_SCHEMA_ID:
        raise InvalidInput("body", "is a Common Alert Schema alert; post it to /api/alerts")
    return parse_event_grid_batch(payload)


def parse_request(
    body: bytes | str, headers: Mapping[str, str]
) -> list[Event | SubscriptionValidation]:
    """An HTTP delivery with its headers: CloudEvents in binary content mode (`ce-*` headers,
    the body is the data) or anything `parse_delivery` takes."""
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if "ce-specversion" in lowered and media not in (
        CLOUDEVENTS_CONTENT_TYPE,
        CLOUDEVENTS_BATCH_CONTENT_TYPE,
    ):
        return [binary_cloud_event(body, lowered)]
    return parse_delivery(body, content_type)


_CE_HEADER_ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time", "dataschema")


def binary_cloud_event(body: bytes | str, headers: Mapping[str, str]) -> Event:
    """CloudEvents 1.0 HTTP binary content mode: attributes in `ce-` headers (percent-encoded),
    `Content-Type` is `datacontenttype`, the body is the data. JSON data is parsed (with
    `load_json`'s limits), text is kept as a string; other media types are refused."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw: dict[str, Any] = {}
    for name in _CE_HEADER_ATTRIBUTES:
        value = lowered.get(f"ce-{name}")
        if value is not None:
            try:
                raw[name] = unquote(value, errors="strict")
            except UnicodeDecodeError:
                raise InvalidInput(f"ce-{name}", "is not percent-encoded UTF-8") from None
    media = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    raw["data"] = _binary_data(body, media)
    try:
        return _cloud_event(raw, "ce")
    except InvalidInput as exc:
        header = "ce-" + exc.field.removeprefix("ce.") if exc.field.startswith("ce.") else exc.field
        raise InvalidInput(header, exc.problem + " (CloudEvents binary mode header)") from None


def _binary_data(body: bytes | str, media: str) -> Any:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput("body", f"is {len(raw)} bytes; the limit is {MAX_BODY_BYTES} (1 MB)")
    if not raw.strip():
        return None
    if not media or media in ("application/json", "text/json") or media.endswith("+json"):
        return load_json(raw)
    if media.startswith("text/"):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("body", f"is not UTF-8 text ({exc.reason})") from None
    raise InvalidInput(
        "content-type",
        f"binary-mode CloudEvents data of type {media[:64]!r} is not supported; "
        "send JSON or text (or use structured mode, application/cloudevents+json)",
    )


@dataclass(frozen=True, slots=True)
class BindingEvent:
    """What the Functions Event Grid binding hands over, as plain fields: a func.EventGridEvent
    (schema "eventgrid", with a topic) or a func.CloudEvent ("cloudevents", with a source).
    Nothing is checked yet: `event_from_binding` parses it, a rejection records it as it came."""

    id: str | None
    event_type: str | None
    subject: str | None
    topic: str | None = None
    source: str | None = None
    event_time: datetime | str | None = None
    data: Any = None
    data_version: str | None = None
    schema: Literal["eventgrid", "cloudevents"] = "eventgrid"

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, as the binding gave them (`data` not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self)}


def event_from_binding(binding: BindingEvent) -> Event:
    """The Functions Event Grid binding hands over a parsed event (func.EventGridEvent with a
    topic, or func.CloudEvent with a source); give it the same shape, in its own schema."""
    b = binding
    when = b.event_time.isoformat() if isinstance(b.event_time, datetime) else b.event_time
    if b.schema == "cloudevents":
        return _cloud_event(
            {
                "specversion": "1.0",
                "id": b.id,
                "type": b.event_type,
                "source": b.source if b.source is not None else b.topic,
                "subject": b.subject,
                "time": when,
                "data": b.data,
                "dataschema": b.data_version,
            },
            "event",
        )
    raw = {
        "id": b.id,
        "eventType": b.event_type,
        "subject": b.subject,
        "topic": b.topic if b.topic is not None else b.source,
        "eventTime": when,
        "data": b.data,
        "dataVersion": b.data_version,
    }
    parsed = _event_grid_event(raw, "event")
    if isinstance(parsed, SubscriptionValidation):
        raise InvalidInput("event.eventType", "a validation handshake is answered by the host")
    return parsed


# --------------------------------------------------------------------------- Key Vault

_KEYVAULT_TYPES: dict[str, KeyVaultObjectType] = {
    "secret": "Secret",
    "key": "Key",
    "certificate": "Certificate",
}


def is_keyvault_event(event: Event) -> bool:
    """A secret, key or certificate event. Vault-level ones (VaultAccessPolicyChanged) carry no
    object and are not taken here."""
    kind = event.type.removeprefix(KEYVAULT_EVENT_PREFIX)
    return kind != event.type and kind.startswith(("Secret", "Key", "Certificate"))


def keyvault_event(event: Event) -> KeyVaultObjectEvent:
    """Key Vault event data, tolerant of key case, stray spaces and string or number NBF/EXP."""
    if not is_keyvault_event(event):
        raise InvalidInput("eventType", f"{event.type!r} is not a Key Vault event")
    data = _normalised_keys(_require_object(event.data, "data"))

    def text(display: str, *, required: bool = True) -> str:
        # Look up by the normalised key, report by the name Azure documents.
        value = data.get(display.casefold())
        if value is None or value == "":
            if required:
                raise InvalidInput(f"data.{display}", "is required")
            return ""
        if not isinstance(value, str):
            raise InvalidInput(f"data.{display}", f"must be a string, got {_json_type(value)}")
        return value

    vault_name = text("VaultName")
    object_name = text("ObjectName")
    raw_type = text("ObjectType")
    object_type = _KEYVAULT_TYPES.get(raw_type.casefold())
    if object_type is None:
        raise InvalidInput(
            "data.ObjectType", f"must be Secret, Key or Certificate, got {raw_type[:32]!r}"
        )
    object_id = text("Id", required=False)
    version = text("Version", required=False)
    if not version and object_id:
        # The Id is https://<vault>.vault.azure.net/<type>s/<name>[/<version>].
        last = object_id.rstrip("/").rsplit("/", 1)[-1]
        version = last if _VERSION.fullmatch(last) else ""
    check_vault_name(vault_name, "data.VaultName")
    check_object_name(object_name, "data.ObjectName")
    if version and not _VERSION.fullmatch(version):
        raise InvalidInput(
            "data.Version", f"is not a Key Vault version (32 hex digits): {version[:64]!r}"
        )
    # Key Vault names versions in lower-case hex and whatever reads the event compares them
    # with what Key Vault answers: one spelling, so an upper-case sender names the same one.
    version = version.lower()
    return KeyVaultObjectEvent(
        event=event,
        vault_name=vault_name,
        object_type=object_type,
        object_name=object_name,
        version=version,
        object_id=object_id,
        not_before=_epoch(data.get("nbf"), "data.NBF"),
        expires=_epoch(data.get("exp"), "data.EXP"),
    )


# Key Vault's naming rules: these names reach notifications, suggested `az` commands and URLs.
_VAULT_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?!-)){1,22}[A-Za-z0-9]")
_OBJECT_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_VERSION = re.compile(r"[0-9A-Fa-f]{32}")


def check_vault_name(name: str, where: str) -> None:
    """3-24 letters, digits and hyphens; starts with a letter, ends with a letter or digit, no
    two hyphens in a row."""
    if not _VAULT_NAME.fullmatch(name) or "--" in name:
        raise InvalidInput(
            where,
            f"is not a Key Vault name (3-24 letters, digits and single hyphens, starting with a "
            f"letter, ending with a letter or digit): {name[:64]!r}",
        )


def check_object_name(name: str, where: str) -> None:
    """Secret, key and certificate names: 1-127 letters, digits and hyphens."""
    if not _OBJECT_NAME.fullmatch(name):
        raise InvalidInput(
            where,
            f"is not a Key Vault object name (1-127 letters, digits and hyphens): {name[:64]!r}",
        )


# --------------------------------------------------------------------------- Common Alert Schema


def parse_alert(body: bytes | str | Mapping[str, Any]) -> AlertEvent:
    """An Azure Monitor action group webhook in the Common Alert Schema."""
    payload = body if isinstance(body, Mapping) else load_json(body)
    root = _require_object(payload, "body")
    schema_id = root.get("schemaId")
    if schema_id != COMMON_ALERT_SCHEMA_ID:
        problem = "is required" if schema_id is None else f"must be {COMMON_ALERT_SCHEMA_ID!r}"
        if schema_id is not None:
            problem += f", got {str(schema_id)[:64]!r} (enable the common alert schema)"
        raise InvalidInput("schemaId", problem)
    data = _require_object(root.get("data"), "data")
    essentials = _require_object(data.get("essentials"), "data.essentials")
    where = "data.essentials"
    condition = _string(essentials, "monitorCondition", where)
    if condition not in ("Fired", "Resolved"):
        raise InvalidInput(
            f"{where}.monitorCondition", f"must be Fired or Resolved, got {condition!r}"
        )
    targets = essentials.get("alertTargetIDs") or []
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise InvalidInput(f"{where}.alertTargetIDs", "must be an array of resource ids")
    custom = data.get("customProperties") or {}
    if not isinstance(custom, Mapping):
        raise InvalidInput("data.customProperties", f"must be an object, got {_json_type(custom)}")
    resolved_at = (
        _timestamp(essentials, "resolvedDateTime", where) if condition == "Resolved" else None
    )
    return AlertEvent(
        alert_id=_string(essentials, "alertId", where),
        rule=_string(essentials, "alertRule", where),
        severity=_string(essentials, "severity", where),
        signal_type=_string(essentials, "signalType", where, required=False),
        condition=condition,  # type: ignore[arg-type]  # checked above
        monitoring_service=_string(essentials, "monitoringService", where, required=False),
        target_ids=tuple(targets),
        fired_at=_timestamp(essentials, "firedDateTime", where),
        resolved_at=resolved_at,
        description=_string(essentials, "description", where, required=False, limit=None),
        essentials=essentials,
        alert_context=data.get("alertContext"),
        custom_properties=custom,
    )


# --------------------------------------------------------------------------- handshakes


def validation_response(events: Sequence[Event | SubscriptionValidation]) -> dict[str, str] | None:
    """`{"validationResponse": code}` when the delivery is Event Grid's validation handshake."""
    for item in events:
        if isinstance(item, SubscriptionValidation):
            return {"validationResponse": item.validation_code}
    return None


DEFAULT_WEBHOOK_ORIGINS = ("eventgrid.azure.net",)
DEFAULT_WEBHOOK_RATE = 120
ORIGINS_SETTING = "PITCREW_WEBHOOK_ALLOWED_ORIGINS"
RATE_SETTING = "PITCREW_WEBHOOK_ALLOWED_RATE"


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """Who may subscribe /api/events as a CloudEvents webhook, and how fast they may send."""

    origins: tuple[str, ...] = DEFAULT_WEBHOOK_ORIGINS
    rate_per_minute: int = DEFAULT_WEBHOOK_RATE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookPolicy:
        """`PITCREW_WEBHOOK_ALLOWED_ORIGINS` (comma list of host names, default
        eventgrid.azure.net) and `PITCREW_WEBHOOK_ALLOWED_RATE` (requests a minute, default 120).
        A malformed setting raises ValueError naming it."""
        raw_origins = env.get(ORIGINS_SETTING, "").strip()
        origins = tuple(o.strip().lower() for o in raw_origins.split(",") if o.strip())
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{ORIGINS_SETTING}: {origin!r} is not a host name")
        raw_rate = env.get(RATE_SETTING, "").strip()
        if raw_rate and (not raw_rate.isascii() or not raw_rate.isdigit() or int(raw_rate) < 1):
            raise ValueError(f"{RATE_SETTING}: {raw_rate!r} is not a whole number above 0")
        return cls(
            origins=origins or DEFAULT_WEBHOOK_ORIGINS,
            rate_per_minute=int(raw_rate) if raw_rate else DEFAULT_WEBHOOK_RATE,
        )


_ORIGIN = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?")


def abuse_protection_headers(
    headers: Mapping[str, str], policy: WebhookPolicy | None = None
) -> dict[str, str]:
    """The CloudEvents webhook abuse-protection answer to `OPTIONS` with WebHook-Request-Origin:
    the origin is granted only when the policy lists it, at the policy's stated rate."""
    policy = policy or WebhookPolicy()
    lowered = {k.lower(): v for k, v in headers.items()}
    origin = lowered.get("webhook-request-origin", "").strip()
    if not origin:
        raise InvalidInput("WebHook-Request-Origin", "header is required for the OPTIONS handshake")
    if origin.lower() not in policy.origins:
        raise InvalidInput(
            "WebHook-Request-Origin",
            f"{origin[:100]!r} is not an allowed origin; allowed: {', '.join(policy.origins)} "
            f"(app setting {ORIGINS_SETTING})",
        )
    return {
        "WebHook-Allowed-Origin": origin,
        "WebHook-Allowed-Rate": str(policy.rate_per_minute),
        "Allow": "POST, OPTIONS",
    }


def only_events(items: Iterable[Event | SubscriptionValidation]) -> list[Event]:
    return [item for item in items if isinstance(item, Event)]
