"""Azure Blob storage: failed-message bodies, and Event Grid dead-letter blobs as a source."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pitcrew.deadletter.grouping import group_id, message_id, normalise_cause
from pitcrew.deadletter.model import Captured, FailedMessage
from pitcrew.events import json_or_none

log = logging.getLogger(__name__)


class BlobBodyStore:
    """Bodies of failed messages, one blob per message, named by the message id."""

    def __init__(self, service: Any, container: str, *, concurrency: int = 16) -> None:
        self._service = service
        self._container = service.get_container_client(container)
        self._created = False
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dlq-body")

    def _ensure(self) -> None:
        if not self._created:
            from azure.core.exceptions import ResourceExistsError  # SDK on first use (cold start)

            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            self._created = True

    def put(self, name: str, data: bytes) -> None:
        self._ensure()
        self._container.upload_blob(name, data, overwrite=True)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        self._ensure()
        list(self._pool.map(lambda item: self.put(*item), items))

    def get(self, name: str) -> bytes:
        data: bytes = self._container.download_blob(name).readall()
        return data

    def get_many(self, names: Iterable[str]) -> list[bytes]:
        return list(self._pool.map(self.get, names))

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        with contextlib.suppress(ResourceNotFoundError):
            self._container.delete_blob(name)


class EventGridDeadletterSource:
    """Reads `<container>/<SUBSCRIPTION>/YYYY/M/D/H/<guid>.json` blobs; each holds a JSON array
    of events Event Grid gave up on. Settling deletes the blob once all its events are stored
    (and settled); a blob holding anything else is kept whole as one failed message."""

    def __init__(self, service: Any, *, name: str, container: str, subscription: str | None,
                 entity: str) -> None:
        self._container = service.get_container_client(container)
        self._name = name
        self._prefix = f"{subscription}/" if subscription else None
        self._entity = entity

    def receive(self, max_messages: int) -> Iterator[list[Captured]]:
        """One list of Captured per blob; the blob is deleted when all of them are settled."""
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        seen = 0
        try:
            blobs = list(self._container.list_blobs(name_starts_with=self._prefix))
        except ResourceNotFoundError:
            return
        for blob in blobs:
            if seen >= max_messages:
                return
            if not blob.name.endswith(".json"):
                continue
            try:
                raw = self._container.download_blob(blob.name).readall()
            except ResourceNotFoundError:
                continue  # another instance settled it
            batch = self._parse(blob.name, raw)
            seen += len(batch)
            yield batch

    def _parse(self, blob_name: str, raw: bytes) -> list[Captured]:
        subscription = blob_name.split("/", 1)[0]
        events = json_or_none(raw)
        if isinstance(events, dict):
            events = [events]
        if not isinstance(events, list) or not events:
            # Not what Event Grid writes: keep it whole as one failed message, never drop it.
            events = [{"deadLetterReason": "UnreadableDeadLetterBlob",
                       "_raw": raw.decode("utf-8", "replace")}]
        captured: list[Captured] = []
        pending, lock = set(range(len(events))), threading.Lock()  # events not yet settled
        for index, event in enumerate(events):
            event = event if isinstance(event, dict) else {"value": event}
            reason = str(event.get("deadLetterReason") or "unknown")
            outcome = event.get("lastDeliveryOutcome")
            status = event.get("lastHttpStatusCode")
            description = f"last delivery outcome {outcome}" if outcome else ""
            if status not in (None, 0, "0"):
                description += f", HTTP {status}"
            event_type = _clip(event.get("eventType") or event.get("type") or "") or ""
            if event_type:
                description += f" ({event_type})"
            entity = f"{self._entity.split('/', 1)[0]}/{subscription}"
            cause = normalise_cause(reason, description)
            group = group_id(entity, cause)
            key = f"eventgrid:{blob_name}#{index}:{event.get('id', '')}"
            # The event as it was published, without what Event Grid added when giving up.
            published = {k: v for k, v in event.items() if k not in _EG_DEADLETTER_FIELDS}
            body = json.dumps(published, separators=(",", ":")).encode()
            message = FailedMessage(
                id=message_id(group, key), group=group, source=self._name,
                source_kind="eventgrid-blob", entity=entity, source_key=key,
                reason=reason, description=description.strip(", "), cause=cause,
                # Clipped to fit the row (the event itself, in the body, keeps them whole).
                properties={"message_id": _clip(event.get("id")),
                            "subject": _clip(event.get("subject")),
                            "content_type": "application/json",
                            "event_type": event_type or None},
                application_properties={},
                delivery_count=_int(event.get("deliveryAttempts")),
                enqueued_time=_time(event.get("publishTime")),
            )
            settle = _BlobSettle(self, blob_name, index, pending, lock)
            captured.append(Captured(message, body, settle=settle))
        return captured

    def _delete(self, blob_name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        with contextlib.suppress(ResourceNotFoundError):
            self._container.delete_blob(blob_name)


_EG_DEADLETTER_FIELDS = frozenset({
    "deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "lastHttpStatusCode",
    "publishTime", "lastDeliveryAttemptTime",
})


class _BlobSettle:
    """Settles one event of a blob: the blob is deleted once every one of its events is
    settled (stored), so an event the store refused keeps the whole blob at its source."""

    def __init__(self, source: EventGridDeadletterSource, blob_name: str, index: int,
                 pending: set[int], lock: threading.Lock) -> None:
        self._source, self._blob, self._index = source, blob_name, index
        self._pending, self._lock = pending, lock

    def __call__(self) -> None:
        with self._lock:
            self._pending.discard(self._index)
            last = not self._pending
        if last:
            self._source._delete(self._blob)


_MAX_INT32 = 2**31 - 1
_MAX_PROPERTY_JSON = 8_000  # each clipped property, JSON-escaped: three fit a row's 30,000


def _int(value: Any) -> int | None:
    """A count as Event Grid writes it; anything that is not a whole number a row's Int32
    holds (1e999, 1e300, -1, "3.5", true) is absent."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number <= _MAX_INT32 else None


def _clip(value: Any, limit: int = 1024) -> str | None:
    """A property value as text that fits the row: at most `limit` characters and
    _MAX_PROPERTY_JSON once JSON-escaped."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text[:limit]
    while len(json.dumps(text)) > _MAX_PROPERTY_JSON:
        text = text[: len(text) // 2]
    return text


def _time(value: Any) -> datetime | None:
    """publishTime, when it is a time a row can hold (Table storage: years 1601 to 9999)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            moment.astimezone(UTC)  # OverflowError for a year 1 or 9999 offset
    except (ValueError, OverflowError):
        return None
    return moment if moment.year >= 1601 else None
