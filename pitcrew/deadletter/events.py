"""Typed inputs that start an ingest: Service Bus's DeadletterMessagesAvailableWithNoListeners
Event Grid event, and a dead-letter depth alert (metric DeadletteredMessages by EntityName)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pitcrew.errors import InvalidInput
from pitcrew.events import AlertEvent, Event

SERVICEBUS_DEADLETTER_EVENT = "Microsoft.ServiceBus.DeadletterMessagesAvailableWithNoListeners"
DEADLETTER_METRIC = "DeadletteredMessages"


@dataclass(frozen=True)
class DeadletterAvailable:
    """A Service Bus entity has dead letters nobody is receiving."""

    id: str
    namespace: str  # short name, e.g. sample-sb
    queue: str | None
    topic: str | None
    subscription: str | None

    @property
    def entity(self) -> str:
        if self.queue:
            return f"servicebus:{self.namespace}/{self.queue}"
        return f"servicebus:{self.namespace}/{self.topic}/subscriptions/{self.subscription}"


def is_servicebus_deadletter_event(event: Event) -> bool:
    return event.type == SERVICEBUS_DEADLETTER_EVENT


def servicebus_deadletter_event(event: Event) -> DeadletterAvailable:
    data = event.data
    if not isinstance(data, dict):
        raise InvalidInput("data", "must be a JSON object")
    lowered = {str(k).strip().casefold(): v for k, v in data.items()}

    def text(name: str) -> str | None:
        value = lowered.get(name.casefold())
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"data.{name}", "must be a string")
        return value.strip()

    namespace = text("namespaceName")
    if not namespace:
        raise InvalidInput("data.namespaceName", "is required")
    queue, topic, subscription = text("queueName"), text("topicName"), text("subscriptionName")
    if not queue and not (topic and subscription):
        raise InvalidInput("data.queueName", "is required unless topicName and subscriptionName "
                           "are given")
    return DeadletterAvailable(id=event.id, namespace=namespace.split(".", 1)[0], queue=queue,
                               topic=topic if not queue else None,
                               subscription=subscription if not queue else None)


def deadletter_alert_entities(alert: AlertEvent) -> list[tuple[str, str]]:
    """(namespace, entity) pairs a firing DeadletteredMessages alert is about."""
    if alert.condition != "Fired":
        return []
    context = alert.alert_context if isinstance(alert.alert_context, dict) else {}
    raw_condition = context.get("condition")
    condition: dict[str, Any] = raw_condition if isinstance(raw_condition, dict) else {}
    raw_criteria = condition.get("allOf")
    criteria: list[Any] = raw_criteria if isinstance(raw_criteria, list) else []
    namespaces = [t.rstrip("/").rsplit("/", 1)[-1] for t in alert.target_ids
                  if "/microsoft.servicebus/namespaces/" in t.lower()]
    found: list[tuple[str, str]] = []
    for criterion in criteria:
        if not isinstance(criterion, dict) or criterion.get("metricName") != DEADLETTER_METRIC:
            continue
        for dim in criterion.get("dimensions") or []:
            if isinstance(dim, dict) and str(dim.get("name", "")).lower() == "entityname":
                for ns in namespaces:
                    found.append((ns.lower(), str(dim.get("value", ""))))
    return found
