"""Azure Service Bus: dead-letter queues as a source (peek-lock), queues and topics as replay
targets. Every property of a message survives the round trip."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from pitcrew.deadletter.grouping import group_id, message_id, normalise_cause
from pitcrew.deadletter.model import Captured, FailedMessage

log = logging.getLogger(__name__)

_RECEIVE_WAIT_SECONDS = 5


class ServiceBusDeadletterSource:
    """`<entity>/$deadletterqueue` read in peek-lock mode: a message is completed only after
    the store holds it. If the lock is lost first, the message stays in the dead-letter queue
    and the next ingest is recognised by the store."""

    def __init__(self, client: Any, *, name: str, namespace: str, queue: str | None,
                 topic: str | None, subscription: str | None, entity: str) -> None:
        self._client = client
        self._name = name
        self._namespace = namespace
        self._queue, self._topic, self._subscription = queue, topic, subscription
        self._entity = entity

    def _receiver(self) -> Any:
        from azure.servicebus import ServiceBusReceiveMode, ServiceBusSubQueue  # lazy (cold start)

        options = {"sub_queue": ServiceBusSubQueue.DEAD_LETTER,
                   "receive_mode": ServiceBusReceiveMode.PEEK_LOCK, "prefetch_count": 0}
        if self._queue is not None:
            return self._client.get_queue_receiver(queue_name=self._queue, **options)
        return self._client.get_subscription_receiver(
            topic_name=self._topic, subscription_name=self._subscription, **options)

    def receive(self, max_messages: int) -> Iterator[list[Captured]]:
        taken = 0
        with self._receiver() as receiver:
            while taken < max_messages:
                batch = receiver.receive_messages(
                    max_message_count=min(100, max_messages - taken),
                    max_wait_time=_RECEIVE_WAIT_SECONDS,
                )
                if not batch:
                    return
                taken += len(batch)
                yield [self._capture(receiver, m) for m in batch]

    def _capture(self, receiver: Any, raw: Any) -> Captured:
        reason = raw.dead_letter_reason or "unknown"
        description = raw.dead_letter_error_description or ""
        cause = normalise_cause(reason, description)
        group = group_id(self._entity, cause)
        path = self._queue or f"{self._topic}/subscriptions/{self._subscription}"
        key = f"servicebus:{self._namespace}/{path}#{raw.sequence_number}"
        body, body_type = message_body(raw)
        ttl = raw.time_to_live
        properties: dict[str, Any] = {
            "message_id": raw.message_id, "correlation_id": raw.correlation_id,
            "subject": raw.subject, "content_type": raw.content_type,
            "session_id": raw.session_id, "partition_key": raw.partition_key,
            "reply_to": raw.reply_to, "reply_to_session_id": raw.reply_to_session_id,
            "to": raw.to,
            "time_to_live": ttl.total_seconds() if isinstance(ttl, timedelta) else ttl,
            "dead_letter_source": raw.dead_letter_source,
        }
        if body_type != "data":
            properties["body_type"] = body_type
        message = FailedMessage(
            id=message_id(group, key), group=group, source=self._name,
            source_kind="servicebus", entity=self._entity, source_key=key,
            reason=reason, description=description, cause=cause,
            properties=properties,
            application_properties=dict(raw.application_properties or {}),
            delivery_count=raw.delivery_count,
            enqueued_time=raw.enqueued_time_utc,
            sequence_number=raw.sequence_number,
        )
        return Captured(message, body, settle=lambda: receiver.complete_message(raw))


def message_body(raw: Any) -> tuple[bytes, str]:
    """The body as bytes; AMQP value and sequence bodies are kept as JSON and flagged."""
    from azure.servicebus.amqp import AmqpMessageBodyType  # SDK on first use (cold start)

    kind = getattr(raw, "body_type", AmqpMessageBodyType.DATA)
    if kind == AmqpMessageBodyType.DATA:
        body = raw.body
        if isinstance(body, bytes | bytearray):
            return bytes(body), "data"
        return b"".join(bytes(part) for part in body), "data"
    name = "value" if kind == AmqpMessageBodyType.VALUE else "sequence"
    return json.dumps(raw.body, default=str).encode(), name


class ServiceBusSender:
    """Replays onto a queue or topic in batches; properties, session and partition key kept."""

    supports_properties = True

    def __init__(self, client: Any, *, namespace: str, entity: str) -> None:
        topic = entity.removeprefix("topics/") if entity.startswith("topics/") else None
        self.target = f"servicebus:{namespace.split('.', 1)[0]}/{entity}"
        self._sender = (client.get_topic_sender(topic_name=topic) if topic
                        else client.get_queue_sender(queue_name=entity))

    def send_batch(self, items: Sequence[Any]) -> None:
        from azure.servicebus.exceptions import MessageSizeExceededError  # lazy (cold start)

        batch = self._sender.create_message_batch()
        for item in items:
            message = build_message(item)
            try:
                batch.add_message(message)
            except MessageSizeExceededError:
                if len(batch) == 0:
                    raise
                self._sender.send_messages(batch)
                batch = self._sender.create_message_batch()
                batch.add_message(message)
        if len(batch):
            self._sender.send_messages(batch)

    def close(self) -> None:
        self._sender.close()


def build_message(item: Any) -> Any:
    from azure.servicebus import ServiceBusMessage  # SDK on first use (cold start)

    props = item.properties
    ttl = props.get("time_to_live")
    return ServiceBusMessage(
        item.body,
        application_properties=item.application_properties or None,
        message_id=props.get("message_id"),
        correlation_id=props.get("correlation_id"),
        subject=props.get("subject"),
        content_type=props.get("content_type"),
        session_id=props.get("session_id"),
        partition_key=props.get("partition_key"),
        reply_to=props.get("reply_to"),
        reply_to_session_id=props.get("reply_to_session_id"),
        to=props.get("to"),
        time_to_live=timedelta(seconds=ttl) if ttl else None,
    )
