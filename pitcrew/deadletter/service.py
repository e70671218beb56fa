"""Wiring for the dead-letter area: the store, source adapters and replay senders, built lazily
from the runtime's cached SDK clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pitcrew.deadletter.policy import (
    EventGridBlobSource,
    ServiceBusSource,
    StorageQueueSource,
)
from pitcrew.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from pitcrew.deadletter.model import Captured, FailedMessage
    from pitcrew.deadletter.store import FailedMessageStore
    from pitcrew.runtime import Runtime
    from pitcrew.services import Services

SourceConfig = StorageQueueSource | ServiceBusSource | EventGridBlobSource


class Source(Protocol):
    def receive(self, max_messages: int) -> Iterator[list[Captured]]: ...


class Sender(Protocol):
    target: str
    supports_properties: bool

    def send_batch(self, items: Sequence[Any]) -> None: ...


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


class DeadletterServices:
    def __init__(self, services: Services, runtime: Runtime) -> None:
        self.services = services
        self.runtime = runtime
        self._store: FailedMessageStore | None = None
        self._senders: dict[str, Sender] = {}

    @property
    def policy(self) -> Any:
        return self.services.policy.deadletter

    @property
    def store(self) -> FailedMessageStore:
        if self._store is None:
            from pitcrew.azure.blobs import BlobBodyStore
            from pitcrew.deadletter.store import FailedMessageStore

            prefix = self.runtime.settings.table_prefix
            container = f"{prefix.lower()[:50]}-dlq-bodies"
            bodies = BlobBodyStore(self.runtime.storage_service("blob"), container)
            self._store = FailedMessageStore(self.runtime.table("dlqmessages"),
                                             self.runtime.table("dlqgroups"), bodies)
        return self._store

    # ------------------------------------------------------------------ sources

    def source(self, config: SourceConfig) -> Source:
        if isinstance(config, StorageQueueSource):
            from pitcrew.azure.queues import PoisonQueueSource

            return PoisonQueueSource(self.runtime.storage_service("queue", config.connection),
                                     name=config.name, queue=config.queue, entity=config.entity)
        if isinstance(config, ServiceBusSource):
            from pitcrew.azure.servicebus import ServiceBusDeadletterSource

            return ServiceBusDeadletterSource(
                self.runtime.servicebus(config.namespace, config.connection), name=config.name,
                namespace=config.namespace, queue=config.queue, topic=config.topic,
                subscription=config.subscription, entity=config.entity)
        from pitcrew.azure.blobs import EventGridDeadletterSource

        return EventGridDeadletterSource(
            self.runtime.storage_service("blob", config.connection), name=config.name,
            container=config.container, subscription=config.subscription, entity=config.entity)

    # ------------------------------------------------------------------ targets

    def original_target(self, message: FailedMessage) -> Target:
        try:
            config = self.policy.source(message.source)
        except KeyError:
            raise InvalidInput("target", f"source {message.source!r} is no longer in the policy; "
                               "give a target") from None
        if config.replay_to:
            return parse_target(config.replay_to)
        if isinstance(config, StorageQueueSource):
            return Target("queue", config.queue, connection=config.connection)
        if isinstance(config, ServiceBusSource):
            if config.queue:
                return Target("servicebus", config.queue, namespace=config.namespace,
                              connection=config.connection)
            return Target("servicebus", f"topics/{config.topic}", namespace=config.namespace,
                          connection=config.connection, subscription=config.subscription)
        raise InvalidInput("target", f"source {config.name!r} (Event Grid) has no replay_to in "
                           "the policy; give a target")

    def sender(self, target: Target) -> Sender:
        key = f"{target.kind}:{target.namespace}:{target.name}:{target.connection}"
        if key not in self._senders:
            if target.kind == "queue":
                from pitcrew.azure.queues import QueueSender

                service = self.runtime.storage_service("queue", target.connection or
                                                       "AzureWebJobsStorage")
                self._senders[key] = QueueSender(service, target.name)
            else:
                from pitcrew.azure.servicebus import ServiceBusSender

                client = self.runtime.servicebus(target.namespace, target.connection)
                self._senders[key] = ServiceBusSender(client, namespace=target.namespace,
                                                      entity=target.name)
        return self._senders[key]

    def enqueue_job(self, job_id: str) -> None:
        from pitcrew.azure.queues import enqueue_replay_job

        enqueue_replay_job(self.runtime.storage_service("queue"), job_id)


def get_deadletter(services: Services | None = None) -> DeadletterServices:
    from pitcrew.runtime import get_runtime
    from pitcrew.services import get_services

    services = services or get_services()
    existing = getattr(services, "_deadletter", None)
    if existing is None:
        existing = DeadletterServices(services, getattr(services, "runtime", None) or get_runtime())
        object.__setattr__(services, "_deadletter", existing)
    return existing
