"""A Service Bus namespace in memory, at the azure-servicebus client boundary.

It enforces what the broker enforces and pitcrew relies on: peek-lock receives lock a message
for `lock_seconds` (time from an injectable clock); only the receiver that holds the lock may
settle it, once, before the lock expires (MessageLockLostError / MessageAlreadySettled, the SDK's
own exceptions); an unsettled message whose lock expired is delivered again with a higher
delivery count; a closed receiver cannot receive or settle; batches have a size limit. Senders
take real `ServiceBusMessage` objects, so what pitcrew builds is what the SDK would send.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageSizeExceededError,
    ServiceBusConnectionError,
    ServiceBusError,
)

_seq = itertools.count(1000)


@dataclass
class Stored:
    body: bytes
    message_id: str | None
    application_properties: dict[Any, Any]
    correlation_id: str | None = None
    subject: str | None = None
    content_type: str | None = None
    session_id: str | None = None
    partition_key: str | None = None
    reply_to: str | None = None
    reply_to_session_id: str | None = None
    to: str | None = None
    time_to_live: timedelta | None = None
    sequence_number: int = field(default_factory=lambda: next(_seq))
    enqueued_time_utc: datetime = field(default_factory=lambda: datetime.now(UTC))
    delivery_count: int = 0
    locked_until: float = -1.0
    lock_owner: Any = None
    lock_token: str | None = None
    settled: bool = False

    # The ServiceBusReceivedMessage surface pitcrew reads.
    @property
    def body_type(self) -> AmqpMessageBodyType:
        return AmqpMessageBodyType.DATA

    @property
    def dead_letter_reason(self) -> str | None:
        return _text(self.application_properties.get(b"DeadLetterReason"))

    @property
    def dead_letter_error_description(self) -> str | None:
        return _text(self.application_properties.get(b"DeadLetterErrorDescription"))

    @property
    def dead_letter_source(self) -> str | None:
        return None


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class ReceivedView:
    """What one receive hands out: the message's fields at that delivery."""

    def __init__(self, stored: Stored) -> None:
        self._stored = stored
        self.lock_token = stored.lock_token

    def __getattr__(self, name: str) -> Any:
        if name == "body":
            return iter([self._stored.body])  # the SDK yields the data sections
        return getattr(self._stored, name)


class FakeNamespace:
    def __init__(self, clock: Callable[[], float], lock_seconds: float = 30.0,
                 max_batch_bytes: int = 256 * 1024) -> None:
        self.clock = clock
        self.lock_seconds = lock_seconds
        self.max_batch_bytes = max_batch_bytes
        self.entities: dict[str, list[Stored]] = {}
        self.sent: dict[str, list[ServiceBusMessage]] = {}
        self.sent_at: dict[str, list[float]] = {}  # the clock's time of each message sent
        self.fail_sends = 0
        self.unreachable = False  # the link cannot be opened (as create_message_batch does)

    def entity(self, path: str) -> list[Stored]:
        return self.entities.setdefault(path, [])

    def dead_letter(self, path: str, body: bytes, reason: str, description: str,
                    **props: Any) -> Stored:
        app = {b"DeadLetterReason": reason.encode(),
               b"DeadLetterErrorDescription": description.encode()}
        app.update({k.encode(): v for k, v in props.pop("application_properties", {}).items()})
        stored = Stored(body=body, message_id=props.pop("message_id", uuid.uuid4().hex),
                        application_properties=app, delivery_count=10, **props)
        self.entity(f"{path}/$deadletterqueue").append(stored)
        return stored

    # -------------------------------------------------------- the ServiceBusClient surface

    def get_queue_receiver(self, queue_name: str, **options: Any) -> FakeReceiver:
        return FakeReceiver(self, queue_name, **options)

    def get_subscription_receiver(self, topic_name: str, subscription_name: str,
                                  **options: Any) -> FakeReceiver:
        return FakeReceiver(self, f"{topic_name}/subscriptions/{subscription_name}", **options)

    def get_queue_sender(self, queue_name: str) -> FakeSender:
        return FakeSender(self, queue_name)

    def get_topic_sender(self, topic_name: str) -> FakeSender:
        return FakeSender(self, f"topics/{topic_name}")


class FakeReceiver:
    def __init__(self, ns: FakeNamespace, path: str, *, sub_queue: Any = None,
                 receive_mode: Any = ServiceBusReceiveMode.PEEK_LOCK,
                 prefetch_count: int = 0) -> None:
        assert receive_mode == ServiceBusReceiveMode.PEEK_LOCK, "never receive-and-delete"
        suffix = "/$deadletterqueue" if sub_queue == ServiceBusSubQueue.DEAD_LETTER else ""
        self.ns = ns
        self.path = path + suffix
        self.open = False

    def __enter__(self) -> FakeReceiver:
        self.open = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.open = False

    def receive_messages(self, max_message_count: int = 1, max_wait_time: float | None = None
                         ) -> list[ReceivedView]:
        if not self.open:
            raise ServiceBusError("the receiver is closed")
        now = self.ns.clock()
        out: list[ReceivedView] = []
        for stored in self.ns.entity(self.path):
            if len(out) >= max_message_count:
                break
            if stored.settled or stored.locked_until > now:
                continue
            stored.delivery_count += 1
            stored.locked_until = now + self.ns.lock_seconds
            stored.lock_owner = self
            stored.lock_token = uuid.uuid4().hex
            out.append(ReceivedView(stored))
        return out

    def complete_message(self, message: ReceivedView) -> None:
        if not self.open:
            raise ServiceBusError("the receiver is closed")
        stored = message._stored
        if stored.settled:
            raise MessageAlreadySettled(action="complete")
        if (stored.lock_owner is not self or stored.lock_token != message.lock_token
                or stored.locked_until <= self.ns.clock()):
            raise MessageLockLostError(message="the lock was lost; the message is redelivered")
        stored.settled = True
        self.ns.entities[self.path].remove(stored)


class FakeBatch:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.messages: list[ServiceBusMessage] = []
        self.size = 0

    def add_message(self, message: ServiceBusMessage) -> None:
        size = len(b"".join(message.body)) + 200
        if self.size + size > self.limit:
            raise MessageSizeExceededError(message="batch is full")
        self.messages.append(message)
        self.size += size

    def __len__(self) -> int:
        return len(self.messages)


class FakeSender:
    def __init__(self, ns: FakeNamespace, path: str) -> None:
        self.ns = ns
        self.path = path
        self.closed = False

    def create_message_batch(self) -> FakeBatch:
        if self.ns.unreachable:
            raise ServiceBusConnectionError(message="the namespace cannot be reached")
        return FakeBatch(self.ns.max_batch_bytes)

    def send_messages(self, batch: FakeBatch | ServiceBusMessage | list[Any]) -> None:
        if self.closed:
            raise ServiceBusError("the sender is closed")
        if self.ns.fail_sends:
            self.ns.fail_sends -= 1
            raise ServiceBusError("the namespace is unavailable")
        messages = batch.messages if isinstance(batch, FakeBatch) else (
            batch if isinstance(batch, list) else [batch])
        for message in messages:
            assert isinstance(message, ServiceBusMessage)
        self.ns.sent.setdefault(self.path, []).extend(messages)
        self.ns.sent_at.setdefault(self.path, []).extend([self.ns.clock()] * len(messages))

    def close(self) -> None:
        self.closed = True
