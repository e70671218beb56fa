"""Brokers (pitcrew.deadletter.ports) over the Azure SDKs: dead-letter sources and replay
senders for Storage queues, Service Bus and Event Grid dead-letter blobs, and the cloud's
Service Bus namespaces. Clients come from the runtime's cache (one credential)."""

from __future__ import annotations

from pitcrew.azure import queues
from pitcrew.azure.blobs import EventGridDeadletterSource
from pitcrew.azure.servicebus import ServiceBusDeadletterSource, ServiceBusSender
from pitcrew.azure.servicebus_purge import delete_deadletters
from pitcrew.deadletter.model import Target
from pitcrew.deadletter.policy import ServiceBusSource, StorageQueueSource
from pitcrew.deadletter.ports import Sender, Source, SourceConfig
from pitcrew.runtime import Runtime


class AzureBrokers:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._senders: dict[str, Sender] = {}

    @property
    def servicebus_suffix(self) -> str:
        return self._runtime.settings.servicebus_suffix

    def servicebus_fqdn(self, namespace: str) -> str:
        return self._runtime.servicebus_namespace(namespace)

    def source(self, config: SourceConfig) -> Source:
        runtime = self._runtime
        if isinstance(config, StorageQueueSource):
            return queues.PoisonQueueSource(
                runtime.storage_service("queue", config.connection), name=config.name,
                queue=config.queue, entity=config.entity)
        if isinstance(config, ServiceBusSource):
            return ServiceBusDeadletterSource(
                runtime.servicebus(config.namespace, config.connection), name=config.name,
                namespace=config.namespace, queue=config.queue, topic=config.topic,
                subscription=config.subscription, entity=config.entity)
        return EventGridDeadletterSource(
            runtime.storage_service("blob", config.connection), name=config.name,
            container=config.container, subscription=config.subscription, entity=config.entity)

    def sender(self, target: Target) -> Sender:
        key = f"{target.kind}:{target.namespace}:{target.name}:{target.connection}"
        if key not in self._senders:
            sender: Sender
            if target.kind == "queue":
                service = self._runtime.storage_service(
                    "queue", target.connection or "AzureWebJobsStorage")
                sender = queues.QueueSender(service, target.name)
            else:
                client = self._runtime.servicebus(target.namespace, target.connection)
                sender = ServiceBusSender(client, namespace=target.namespace, entity=target.name)
            self._senders[key] = sender
        return self._senders[key]

    def waiting(self, config: StorageQueueSource) -> int:
        client = self._runtime.storage_service("queue", config.connection) \
            .get_queue_client(f"{config.queue}{queues.POISON_SUFFIX}")
        return int(client.get_queue_properties().approximate_message_count or 0)

    def delete_deadletters(self, config: ServiceBusSource, sequence_numbers: set[int], *,
                           max_messages: int) -> int:
        client = self._runtime.servicebus(config.namespace, config.connection)
        return delete_deadletters(
            client, queue=config.queue, topic=config.topic, subscription=config.subscription,
            sequence_numbers=sequence_numbers, max_messages=max_messages)
