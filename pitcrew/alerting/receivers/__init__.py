"""Receivers: where a notification is delivered. One module per service, each with its pydantic
config model (the policy's `receivers:` map is a union of RECEIVER_CONFIGS, discriminated by
`type`) and a receiver class:

    webhook    generic JSON webhook (pitcrew.notification/v1), Idempotency-Key
    pagerduty  PagerDuty Events API v2, dedup_key = the group key, trigger and resolve
    teams      Microsoft Teams through a Workflows webhook, an Adaptive Card
    slack      Slack incoming webhook, Block Kit with a text fallback
    email      SMTP with STARTTLS
    eventgrid  an Event Grid custom topic, CloudEvents `pitcrew.AlertNotification`

The contract (pitcrew.ports.Channel, `Receiver` here): `name` and `deliver(notification)`,
raising DeliveryFailed(reason, retryable=..., retry_after_seconds=...). Every receiver has a
rate cap per process (`max_per_minute`), honours Retry-After and sends the notification's
idempotency key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from pitcrew.alerting.receivers.base import DeliveryFailed, Receiver, idempotency_key
from pitcrew.alerting.receivers.email import EmailConfig, EmailReceiver
from pitcrew.alerting.receivers.eventgrid import (
    EventGridConfig,
    EventGridReceiver,
    PublisherFactory,
)
from pitcrew.alerting.receivers.pagerduty import PagerDutyConfig, PagerDutyReceiver
from pitcrew.alerting.receivers.slack import SlackConfig, SlackReceiver
from pitcrew.alerting.receivers.teams import TeamsConfig, TeamsReceiver
from pitcrew.alerting.receivers.webhook import WebhookConfig, WebhookReceiver
from pitcrew.registry import Registry

RECEIVER_CONFIGS = (
    WebhookConfig, PagerDutyConfig, TeamsConfig, SlackConfig, EmailConfig, EventGridConfig,
)
"""The config models, for the policy's discriminated union (by `type`)."""


Builder = Callable[[str, Any, httpx.Client, "PublisherFactory | None"], Receiver]

BUILDERS: Registry[Builder] = Registry("receiver type")
BUILDERS.add("webhook", lambda name, config, client, _: WebhookReceiver(name, config, client))
BUILDERS.add("pagerduty", lambda name, config, client, _: PagerDutyReceiver(name, config, client))
BUILDERS.add("teams", lambda name, config, client, _: TeamsReceiver(name, config, client))
BUILDERS.add("slack", lambda name, config, client, _: SlackReceiver(name, config, client))
BUILDERS.add("email", lambda name, config, _client, _: EmailReceiver(name, config))
BUILDERS.add("eventgrid",
             lambda name, config, _client, events: EventGridReceiver(name, config, events))


def receiver_configs(policy: Any) -> Mapping[str, Any]:
    """The policy's receivers by name: its `receivers:` map, or the older `channels:` map."""
    found = getattr(policy, "receivers", None)
    if isinstance(found, Mapping) and found:
        return found
    channels = getattr(policy, "channels", None)
    return channels if isinstance(channels, Mapping) else {}


def build_receivers(policy: Any, http_client: httpx.Client, *,
                    eventgrid: PublisherFactory | None = None) -> dict[str, Receiver]:
    """One receiver per entry of the policy. `eventgrid` builds Event Grid publishers (the
    composition root passes one over the app's identity)."""
    return {
        name: BUILDERS.get(config.type)(name, config, http_client, eventgrid)
        for name, config in receiver_configs(policy).items()
    }


__all__ = [
    "BUILDERS", "RECEIVER_CONFIGS", "DeliveryFailed", "EmailConfig", "EventGridConfig",
    "PagerDutyConfig", "Receiver", "SlackConfig", "TeamsConfig", "WebhookConfig",
    "build_receivers", "idempotency_key",
]
