"""Storage queue triggers: poll Azurite (or any storage account) the way the queues extension does.

Semantics copied from the WebJobs queues extension:
- messages are received in batches of `batchSize`, with exponential back-off up to
  `maxPollingInterval` while the queue is empty;
- the message text is base64-decoded (host.json `messageEncoding`, default base64); a message
  that is not valid base64 cannot be decoded and goes straight to the poison queue;
- success deletes the message; failure makes it visible again after `visibilityTimeout`;
- a message that fails with `dequeue_count >= maxDequeueCount` is copied, unchanged, to
  `<queue>-poison` (created if missing) and deleted from the original queue.
The SDK is synchronous and imported lazily; every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pitcrew_dev.catalog import FunctionSpec
from pitcrew_dev.hostconfig import HostConfigError, QueueOptions, resolve_setting_refs
from pitcrew_dev.invoke import FunctionFailed, invoke

log = logging.getLogger("pitcrew_dev.host")

_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
# While a function runs, its message stays invisible this long (the host renews its lease; the
# local host relies on functionTimeout being shorter instead).
_PROCESSING_LEASE = timedelta(minutes=10)
_MIN_POLL = 0.1


@dataclass(frozen=True)
class QueueBinding:
    """A queue trigger's resolved queue name and connection string."""

    queue_name: str
    connection_string: str

    @property
    def poison_queue_name(self) -> str:
        return f"{self.queue_name}-poison"

    @classmethod
    def resolve(cls, spec: FunctionSpec, settings: Mapping[str, str]) -> QueueBinding:
        field = f"function {spec.name!r} queueName"
        name = resolve_setting_refs(str(spec.trigger.get("queueName") or ""), settings, field=field)
        name = name.lower()  # the host lower-cases queue names too
        if not _QUEUE_NAME.match(name):
            raise HostConfigError(
                f"{field}: {name!r} is not a valid queue name "
                "(3-63 lower-case letters, digits and single hyphens)"
            )
        return cls(queue_name=name, connection_string=_connection(spec, settings))


def _connection(spec: FunctionSpec, settings: Mapping[str, str]) -> str:
    """Look up `connection`, then `AzureWebJobs<connection>`, as the host does.

    Without `connection` the host uses AzureWebJobsStorage.
    """
    setting = str(spec.trigger.get("connection") or "AzureWebJobsStorage")
    for candidate in (setting, f"AzureWebJobs{setting}"):
        value = settings.get(candidate)
        if value:
            return value
    if any(name.startswith(f"{setting}__") for name in settings):
        raise HostConfigError(
            f"function {spec.name!r}: connection {setting!r} is identity-based "
            f"({setting}__...), which the local host does not support; set {setting} "
            "to a connection string (Azurite's for local runs)"
        )
    raise HostConfigError(
        f"function {spec.name!r}: connection setting {setting!r} is not set "
        "(the local host sets AzureWebJobsStorage to Azurite when it is unset)"
    )


def decode_body(raw: str, encoding: str) -> str | bytes:
    """The message body as the worker passes it: text when UTF-8, bytes otherwise.

    Raises ValueError when base64 decoding fails (the extension poisons such messages).
    """
    if encoding == "none":
        return raw
    try:
        data = base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"message is not valid base64: {exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def to_binding(message: Any, body: str | bytes) -> Any:
    # azure.functions.QueueMessage is the bare base class; the worker builds this subclass,
    # which carries dequeue_count and the timestamps.
    from azure.functions.queue import QueueMessage

    return QueueMessage(
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        insertion_time=message.inserted_on,
        expiration_time=message.expires_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


class QueueWorker:
    """Polls one queue for one function until cancelled."""

    def __init__(self, spec: FunctionSpec, binding: QueueBinding, options: QueueOptions) -> None:
        self.spec = spec
        self.binding = binding
        self.options = options
        self._client: Any = None
        self._poison: Any = None
        self._failing_since_log = False

    def _clients(self) -> tuple[Any, Any]:
        if self._client is None:
            from azure.storage.queue import QueueClient

            # No message encode/decode policy: we handle base64 ourselves so the poison queue
            # receives the original text byte for byte.
            self._client = QueueClient.from_connection_string(
                self.binding.connection_string, self.binding.queue_name
            )
            self._poison = QueueClient.from_connection_string(
                self.binding.connection_string, self.binding.poison_queue_name
            )
        return self._client, self._poison

    @staticmethod
    def _create_if_missing(client: Any) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            client.create_queue()

    async def run(self) -> None:
        delay = _MIN_POLL
        ceiling = max(_MIN_POLL, self.options.max_polling_interval.total_seconds())
        while True:
            try:
                messages = await asyncio.to_thread(self._receive)
                self._failing_since_log = False
            except Exception as exc:  # storage down: keep trying, say so once per outage
                if not self._failing_since_log:
                    log.error(
                        "queue %s unavailable for '%s': %s",
                        self.binding.queue_name,
                        self.spec.name,
                        exc,
                    )
                    self._failing_since_log = True
                messages = []
            if messages:
                delay = _MIN_POLL
                await asyncio.gather(*(self._process_safely(m) for m in messages))
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, ceiling)

    def _receive(self) -> list[Any]:
        client, _ = self._clients()
        try:
            return self._receive_batch(client)
        except Exception as exc:
            from azure.core.exceptions import ResourceNotFoundError

            if not isinstance(exc, ResourceNotFoundError):
                raise
            self._create_if_missing(client)  # the host creates a trigger's queue on start too
            return self._receive_batch(client)

    def _receive_batch(self, client: Any) -> list[Any]:
        batch = self.options.batch_size
        pager = client.receive_messages(
            messages_per_page=batch,
            max_messages=batch,
            visibility_timeout=int(_PROCESSING_LEASE.total_seconds()),
        )
        return list(pager)

    async def _process_safely(self, message: Any) -> None:
        """A storage error on one message must not stop the poller; the message reappears."""
        try:
            await self._process(message)
        except Exception:
            log.exception(
                "queue %s: handling message %s failed; it becomes visible again",
                self.binding.queue_name,
                message.id,
            )

    async def _process(self, message: Any) -> None:
        try:
            body = decode_body(message.content or "", self.options.message_encoding)
        except ValueError as exc:
            await asyncio.to_thread(self._to_poison, message, f"cannot be decoded ({exc})")
            return
        if message.dequeue_count > self.options.max_dequeue_count:
            # maxDequeueCount was lowered, or an earlier host died mid-run: poison without a run.
            await asyncio.to_thread(self._to_poison, message, "was dequeued too often")
            return
        try:
            await invoke(self.spec, to_binding(message, body))
        except FunctionFailed:
            await asyncio.to_thread(self._after_failure, message)
            return
        await asyncio.to_thread(self._delete, message)

    def _after_failure(self, message: Any) -> None:
        if message.dequeue_count >= self.options.max_dequeue_count:
            self._to_poison(
                message, f"has reached MaxDequeueCount of {self.options.max_dequeue_count}"
            )
            return
        client, _ = self._clients()
        client.update_message(
            message.id,
            pop_receipt=message.pop_receipt,
            visibility_timeout=int(self.options.visibility_timeout.total_seconds()),
        )

    def _to_poison(self, message: Any, reason: str) -> None:
        client, poison = self._clients()
        self._create_if_missing(poison)
        poison.send_message(message.content)
        client.delete_message(message.id, message.pop_receipt)
        log.warning(
            "Message %s on queue '%s' %s; moved to queue '%s'",
            message.id,
            self.binding.queue_name,
            reason,
            self.binding.poison_queue_name,
        )

    def _delete(self, message: Any) -> None:
        client, _ = self._clients()
        client.delete_message(message.id, message.pop_receipt)
