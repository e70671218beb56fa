"""The ports of the dead-letter area and the bundle of services it works with.

`pitcrew/azure/` implements them: the failed-message store over Table and Blob storage
(pitcrew.azure.tables.deadletter), sources and senders over Storage queues, Service Bus and
Event Grid dead-letter blobs (pitcrew.azure.deadletter). `pitcrew.bootstrap` wires them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pitcrew.deadletter.model import Arrival, Captured, FailedMessage, Group, MessageFilter, Target
from pitcrew.deadletter.policy import (
    DeadletterPolicy,
    EventGridBlobSource,
    ServiceBusSource,
    StorageQueueSource,
)
from pitcrew.http.paging import Page
from pitcrew.ports import AuditLog, Notifier, StateStore

SourceConfig = StorageQueueSource | ServiceBusSource | EventGridBlobSource


class BodyStore(Protocol):
    """Failed-message bodies by message id (missing: the SDK's not-found error)."""

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None: ...

    def get(self, name: str) -> bytes: ...

    def get_many(self, names: Iterable[str]) -> list[bytes]: ...

    def delete(self, name: str) -> None: ...


class FailedMessageStore(Protocol):
    """Failed messages and their groups; every change conditional on what was read."""

    bodies: BodyStore

    def put_many(self, items: Sequence[tuple[FailedMessage, bytes]]) -> set[str]: ...

    def put(self, message: FailedMessage, body: bytes) -> bool: ...

    def update(self, message: FailedMessage) -> FailedMessage: ...

    def update_many(self, messages: Sequence[FailedMessage], *,
                    fields: Sequence[str] | None = None) -> list[FailedMessage]:
        """Each message changed since read, ETag-conditional; `fields` names the only
        attributes that changed (a transition), so the rest need not be sent."""
        ...

    def delete(self, message: FailedMessage) -> None: ...

    def get(self, message_id: str) -> FailedMessage: ...

    def body(self, message_id: str) -> bytes: ...

    def bodies_of(self, messages: Sequence[FailedMessage]) -> list[bytes]:
        """Bodies of messages read from the store, in order (those kept in the row cost no
        round trip)."""
        ...

    def count_in_group(self, group: str, *, ingested_until: datetime | None = None) -> int: ...

    def in_group(self, group: str, *, status: str | None = None,
                 ingested_until: datetime | None = None, after: str | None = None,
                 page_size: int = 100) -> Iterator[FailedMessage]: ...

    def messages_page(self, group: str, flt: MessageFilter | None = None, *, limit: int,
                      after: str | None = None) -> Page[FailedMessage]: ...

    def status_counts(self, group: str) -> dict[str, int]: ...

    def ingested_before(self, before: datetime) -> Iterator[FailedMessage]: ...

    def with_status(self, status: str) -> Iterator[FailedMessage]: ...

    def record_arrivals(self, sample: FailedMessage, new: int, seen_at: datetime,
                        thresholds: Sequence[int], *, known: Group | None = None) -> Arrival:
        """`known`: the group as this caller last wrote it (saves reading it again)."""
        ...

    def mark_notice_sent(self, group: Group, level: int) -> None: ...

    def groups_page(self, *, limit: int, after: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    source: str | None = None, entity: str | None = None) -> Page[Group]: ...

    def delete_group(self, group_id: str) -> None: ...

    def groups(self) -> Iterator[Group]: ...

    def group(self, group_id: str) -> Group: ...


class Source(Protocol):
    def receive(self, max_messages: int) -> Iterator[list[Captured]]: ...


class Sender(Protocol):
    target: str
    supports_properties: bool

    def send_batch(self, items: Sequence[Any]) -> Collection[int] | None:
        """Send every item, or raise. Returns the positions of the items that may have
        arrived twice (a send repeated after its answer was lost); None when none may."""
        ...


class JobQueue(Protocol):
    """Wakes the queue trigger that runs a job (`run_replay_job`, `run_scan_job`)."""

    def enqueue(self, job_id: str, *, delay: float = 0) -> None:
        """Now, or with the message invisible for `delay` seconds."""
        ...


class Brokers(Protocol):
    """Where dead letters come from and replays go: the sources and targets the policy names
    and the cloud's Service Bus namespaces."""

    @property
    def servicebus_suffix(self) -> str:
        """The cloud's Service Bus DNS suffix (PITCREW_SERVICEBUS_SUFFIX)."""
        ...

    def source(self, config: SourceConfig) -> Source: ...

    def sender(self, target: Target) -> Sender: ...

    def servicebus_fqdn(self, namespace: str) -> str:
        """`<name>.<suffix>`; ConfigurationError for anything outside the suffix."""
        ...

    def waiting(self, config: StorageQueueSource) -> int:
        """Messages waiting in a storage source's poison queue."""
        ...

    def delete_deadletters(self, config: ServiceBusSource, sequence_numbers: set[int], *,
                           max_messages: int) -> int: ...


@dataclass
class DeadletterServices:
    policy: DeadletterPolicy
    state: StateStore
    audit: AuditLog
    router: Notifier
    store: FailedMessageStore
    brokers: Brokers
    replay_jobs: JobQueue
    scan_jobs: JobQueue

    def sender(self, target: Target) -> Sender:
        return self.brokers.sender(target)

    def source(self, config: SourceConfig) -> Source:
        return self.brokers.source(config)
