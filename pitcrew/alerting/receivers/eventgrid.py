"""An Event Grid custom topic: each notification published as a CloudEvent of type
`pitcrew.AlertNotification` (data: the notification, pitcrew.notification/v1) through
azure-eventgrid's EventGridPublisherClient (pitcrew.azure.eventgrid), for consumers that route
alerts on themselves. Managed identity (EventGrid Data Sender on the topic) unless the config
names an app setting holding an access key. The event id is the idempotency key, so a consumer
can drop the rare resend after a crash."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from pydantic import Field, model_validator

from pitcrew.alerting.receivers.base import (
    DeliveryFailed,
    RateGate,
    ReceiverConfig,
    check_endpoint,
    check_setting_name,
    cut,
    endpoint_setting,
    exactly_one,
    idempotency_key,
    rate_gate,
    retry_after,
    setting,
    unread_settings,
)
from pitcrew.alerting.receivers.render import view
from pitcrew.notify.model import Notification

EVENT_TYPE = "pitcrew.AlertNotification"
DEFAULT_PER_MINUTE = 600


class EventPublisher(Protocol):
    def publish(self, event: Mapping[str, Any]) -> None: ...


PublisherFactory = Callable[[str, "str | None"], EventPublisher]
"""(topic endpoint, access key or None for the app's identity) -> a publisher."""


class EventGridConfig(ReceiverConfig):
    """An Event Grid custom topic (CloudEvents 1.0 input schema)."""

    type: Literal["eventgrid"]
    endpoint: str | None = Field(
        default=None, description="The topic endpoint, https://<topic>.<region>-1."
        "eventgrid.azure.net/api/events.")
    endpoint_setting: str | None = Field(
        default=None, description="Name of the app setting holding the topic endpoint.")
    key_setting: str | None = Field(
        default=None, description="Name of the app setting holding an access key; the app's "
        "managed identity (EventGrid Data Sender) when omitted.")
    source: str = Field(default="/pitcrew/alerting", min_length=1, max_length=500)

    @model_validator(mode="after")
    def _one_endpoint(self) -> EventGridConfig:
        exactly_one(self, "endpoint")
        check_endpoint(self.endpoint)
        check_setting_name(self.endpoint_setting)
        check_setting_name(self.key_setting)
        return self

    def settings_problems(self, env: Mapping[str, str]) -> dict[str, str]:
        endpoint, key = self.endpoint_setting, self.key_setting
        return unread_settings({
            "endpoint_setting": (lambda: endpoint_setting(endpoint, "Event Grid endpoint", env))
            if endpoint else None,
            "key_setting": (lambda: setting(key, "Event Grid access key", env)) if key else None,
        })


def cloud_event(notification: Notification, source: str) -> dict[str, Any]:
    seen = view(notification)
    return {
        "id": idempotency_key(notification.id),
        "source": source,
        "type": EVENT_TYPE,
        "subject": cut(seen.group_key, 1000),
        "data": notification.to_dict(),
        "datacontenttype": "application/json",
    }


class EventGridReceiver:
    def __init__(self, name: str, config: EventGridConfig, publishers: PublisherFactory | None,
                 gate: RateGate | None = None) -> None:
        self.name = name
        self._config = config
        self._publishers = publishers
        self._built: dict[tuple[str, str | None], EventPublisher] = {}
        self._gate = gate or rate_gate("eventgrid", name,
                                       config.max_per_minute or DEFAULT_PER_MINUTE)

    def _publisher(self) -> tuple[EventPublisher, tuple[str, ...]]:
        config = self._config
        endpoint = config.endpoint or endpoint_setting(str(config.endpoint_setting),
                                                       "Event Grid endpoint")
        key = setting(config.key_setting, "Event Grid access key") if config.key_setting else None
        if self._publishers is None:
            raise DeliveryFailed(f"receiver {self.name!r} has no Event Grid client "
                                 "(pitcrew.bootstrap gives one)", retryable=False)
        publisher = self._built.get((endpoint, key))
        if publisher is None:
            publisher = self._built[(endpoint, key)] = self._publishers(endpoint, key)
        return publisher, tuple(s for s in (endpoint, key) if s)

    def deliver(self, notification: Notification) -> None:
        publisher, secrets = self._publisher()
        self._gate.admit(self.name)
        try:
            publisher.publish(cloud_event(notification, self._config.source))
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            wait = retry_after({k.lower(): v for k, v in dict(headers).items()}) \
                if status in (429, 503) else None
            if wait is not None:
                self._gate.hold(wait)
            reason = f"HTTP {status}" if isinstance(status, int) else type(exc).__name__
            text = str(exc)
            for secret in secrets:
                text = text.replace(secret, "<redacted>")
            raise DeliveryFailed(
                f"{reason}: {cut(text, 150)}" if not isinstance(status, int) else reason,
                retryable=not isinstance(status, int) or status >= 500 or status in (408, 429),
                retry_after_seconds=wait,
            ) from None
