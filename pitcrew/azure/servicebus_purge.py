"""Deleting dead-lettered messages from a Service Bus entity's dead-letter queue by sequence
number (`pitcrew dlq purge`): the broker's copies of messages pitcrew stored but could not
settle (a lost lock) would otherwise come back at the next ingest.

azure-servicebus 7.15 (the pinned SDK) offers no server-side batch delete on
`ServiceBusReceiver` (no `delete_messages` / `purge_messages`), so this receives the dead-letter
queue in peek-lock mode, completes the messages whose sequence numbers match, and abandons the
others at the end of the walk (they stay, with one more delivery counted).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

_RECEIVE_WAIT_SECONDS = 2


def delete_deadletters(client: Any, *, queue: str | None, topic: str | None,
                       subscription: str | None, sequence_numbers: Iterable[int],
                       max_messages: int) -> int:
    """Complete the dead-lettered messages with these sequence numbers; look at no more than
    `max_messages`. Returns how many were deleted."""
    from azure.servicebus import ServiceBusReceiveMode, ServiceBusSubQueue  # lazy (cold start)

    wanted = set(sequence_numbers)
    if not wanted:
        return 0
    options = {"sub_queue": ServiceBusSubQueue.DEAD_LETTER,
               "receive_mode": ServiceBusReceiveMode.PEEK_LOCK, "prefetch_count": 0}
    receiver = (client.get_queue_receiver(queue_name=queue, **options) if queue else
                client.get_subscription_receiver(topic_name=topic,
                                                 subscription_name=subscription, **options))
    deleted = 0
    held: list[Any] = []
    seen: set[int] = set()
    with receiver:
        while wanted and len(seen) < max_messages:
            batch = receiver.receive_messages(
                max_message_count=min(100, max_messages - len(seen)),
                max_wait_time=_RECEIVE_WAIT_SECONDS)
            if not batch:
                break
            for message in batch:
                number = message.sequence_number
                if number in seen:
                    continue
                seen.add(number)
                if number in wanted:
                    receiver.complete_message(message)
                    wanted.discard(number)
                    deleted += 1
                else:
                    held.append(message)  # released after the walk, so it is not read again
        for message in held:
            try:
                receiver.abandon_message(message)
            except Exception as exc:  # its lock lapses on its own
                log.info("could not release dead-letter message %s (%s)",
                         message.sequence_number, type(exc).__name__)
    return deleted
