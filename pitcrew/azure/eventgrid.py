"""Event Grid: the EventPublisher port over azure-eventgrid's EventGridPublisherClient."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class EventGridPublisher:
    """Publishes CloudEvents 1.0 (given as dicts) to a custom topic."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def publish(self, event: Mapping[str, Any]) -> None:
        from azure.core.messaging import CloudEvent  # SDK on first use (cold start)

        cloud_event = CloudEvent(
            source=event["source"],
            type=event["type"],
            data=event.get("data"),
            subject=event.get("subject"),
            id=event["id"],
            datacontenttype=event.get("datacontenttype", "application/json"),
        )
        self._client.send([cloud_event])


def topic_publisher(endpoint: str, *, key: str | None, credential: Callable[[], Any],
                    **client_kwargs: Any) -> EventGridPublisher:
    """A publisher to the custom topic at `endpoint`: with an access key when one is given,
    else with `credential()` (the app's identity)."""
    from azure.eventgrid import EventGridPublisherClient  # SDK on first use (cold start)

    if key:
        from azure.core.credentials import AzureKeyCredential  # SDK on first use (cold start)

        return EventGridPublisher(
            EventGridPublisherClient(endpoint, AzureKeyCredential(key), **client_kwargs))
    return EventGridPublisher(EventGridPublisherClient(endpoint, credential(), **client_kwargs))
