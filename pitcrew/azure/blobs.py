"""Azure Blob storage: failed-message bodies, and Event Grid dead-letter blobs as a source."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
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
    of events Event Grid gave up on. Settling deletes the blob once all its events are stored."""

    def __init__(self, service: Any, *, name: str, container: str, subscription: str | None,
                 entity: str) -> None:
        self._container = service.get_container_client(container)
        self._name = name
        self._prefix = f"{subscription}/" if subscription else None
        self._entity = entity

    def receive(self, max_messages: int) -> Iterator[list[Captured]]:
        """One list of Captured per blob; the last Captured of a blob settles the blob."""
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
        if not isinstance(events, list):
            # Not what Event Grid writes: keep it whole as one failed message, never drop it.
            events = [{"deadLetterReason": "UnreadableDeadLetterBlob",
                       "_raw": raw.decode("utf-8", "replace")}]
        captured: list[Captured] = []
        for index, event in enumerate(events):
            event = event if isinstance(event, dict) else {"value": event}
            reason = str(event.get("deadLetterReason") or "unknown")
            outcome = event.get("lastDeliveryOutcome")
            status = event.get("lastHttpStatusCode")
            description = f"last delivery outcome {outcome}" if outcome else ""
            if status not in (None, 0, "0"):
                description += f", HTTP {status}"
            event_type = str(event.get("eventType") or event.get("type") or "")
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
                properties={"message_id": event.get("id"), "subject": event.get("subject"),
                            "content_type": "application/json",
                            "event_type": event_type or None},
                application_properties={},
                delivery_count=_int(event.get("deliveryAttempts")),
                enqueued_time=_time(event.get("publishTime")),
            )
            captured.append(Captured(message, body, settle=lambda: None))
        last = captured[-1]
        captured[-1] = Captured(last.message, last.body, settle=lambda: self._delete(blob_name))
        return captured

    def _delete(self, blob_name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        with contextlib.suppress(ResourceNotFoundError):
            self._container.delete_blob(blob_name)


_EG_DEADLETTER_FIELDS = frozenset({
    "deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "lastHttpStatusCode",
    "publishTime", "lastDeliveryAttemptTime",
})


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
