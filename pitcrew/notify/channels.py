"""Channels deliver a notification somewhere: the receivers of pitcrew.alerting.receivers (the
generic webhook moved there). Kept for the names older code imports: DeliveryFailed,
idempotency_key, WebhookSender and build_channels (which gives the Event Grid receiver its
publishers over the app's identity)."""

from __future__ import annotations

from typing import Any

import httpx

from pitcrew.alerting.receivers import Receiver, build_receivers
from pitcrew.alerting.receivers.base import DeliveryFailed, idempotency_key
from pitcrew.alerting.receivers.webhook import WebhookSender
from pitcrew.azure.eventgrid import EventGridPublisher, topic_publisher
from pitcrew.runtime import get_runtime


def eventgrid_publishers(endpoint: str, key: str | None) -> EventGridPublisher:
    """An Event Grid publisher as the app publishes: its identity (or `key`), its client
    settings (the local Azure endpoint's CA under `pitcrew dev`)."""
    runtime = get_runtime()
    return topic_publisher(endpoint, key=key, credential=runtime.azure_credential,
                           **runtime.azure_client_kwargs())


def build_channels(policy: Any, client: httpx.Client) -> dict[str, Receiver]:
    return build_receivers(policy, client, eventgrid=eventgrid_publishers)


__all__ = ["DeliveryFailed", "WebhookSender", "build_channels", "eventgrid_publishers",
           "idempotency_key"]
