"""PagerDuty Events API v2: one event per notification to /v2/enqueue.

The routing (integration) key is read from an app setting the config names (a Key Vault
reference in Azure); the policy never holds it, and no error or log line quotes it. The group
key is the `dedup_key`, so a firing group triggers one incident and its resolution resolves
it. Severity is PagerDuty's four: critical, error, warning, info. The summary is cut to the
API's 1024 characters, `source` to 255. 202 is delivered; 429 and 5xx are retried (after
Retry-After when the answer carries one), 400 (an event PagerDuty refuses) is reported as not
retryable."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from pitcrew.alerting.receivers.base import (
    HttpReceiver,
    ReceiverConfig,
    SettingName,
    check_endpoint,
    cut,
    setting,
    unread_settings,
)
from pitcrew.alerting.receivers.render import View, view
from pitcrew.links import public_base_url
from pitcrew.notify.model import Notification

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_PER_MINUTE = 120
SUMMARY_LIMIT = 1024
SOURCE_LIMIT = 255
DEDUP_KEY_LIMIT = 255


class PagerDutyConfig(ReceiverConfig):
    """PagerDuty Events API v2 (an Events API v2 integration on a service)."""

    type: Literal["pagerduty"]
    routing_key_setting: SettingName = Field(
        description="Name of the app setting holding the integration's routing key (a Key "
        "Vault reference in Azure); the key itself never goes in the policy.",
    )
    url: str = Field(default=EVENTS_URL, description="The Events API endpoint.")
    source: str | None = Field(
        default=None, max_length=SOURCE_LIMIT,
        description="payload.source; the alert's targets (or 'pitcrew') when omitted.",
    )
    component: str | None = Field(default=None, max_length=255)
    group: str | None = Field(default=None, max_length=255)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_endpoint(value)
        return value

    def settings_problems(self, env: Mapping[str, str]) -> dict[str, str]:
        return unread_settings({"routing_key_setting": lambda: setting(
            self.routing_key_setting, "PagerDuty routing key", env)})


def dedup_key(group_key: str) -> str:
    """The group key as PagerDuty's dedup_key: itself when it fits 255 characters, else its
    SHA-256 (stable, so trigger and resolve still meet)."""
    if len(group_key) <= DEDUP_KEY_LIMIT:
        return group_key
    return "sha256:" + hashlib.sha256(group_key.encode("utf-8", "surrogatepass")).hexdigest()


def event(notification: Notification, routing_key: str, config: PagerDutyConfig) -> dict[str, Any]:
    """The Events API v2 body for a notification: `trigger` with a payload, or `resolve`."""
    seen = view(notification)
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if seen.resolved else "trigger",
        "dedup_key": dedup_key(seen.group_key),
    }
    if seen.resolved:
        return body
    body["payload"] = _payload(seen, config)
    body["client"] = "pitcrew"
    base = public_base_url()
    if base and base.startswith("https://"):
        body["client_url"] = base
    links = [{"href": url, "text": cut(label, 255)} for label, url in seen.links]
    if links:
        body["links"] = links[:20]
    return body


def _payload(seen: View, config: PagerDutyConfig) -> dict[str, Any]:
    source = config.source or dict(seen.facts).get("Targets") or "pitcrew"
    details: dict[str, Any] = {"summary": cut(seen.summary, 4000)}
    details.update({k: cut(v, 1000) for k, v in seen.facts[:40]})
    if seen.labels:
        details["labels"] = seen.labels
    if seen.alerts:
        details["alerts"] = [cut(a, 300) for a in seen.alerts[:50]]
        if len(seen.alerts) > 50:
            details["alerts_omitted"] = len(seen.alerts) - 50
    if seen.commands:
        details["commands"] = {label: command for label, command in seen.commands}
    payload: dict[str, Any] = {
        "summary": cut(seen.title, SUMMARY_LIMIT),
        "source": cut(source, SOURCE_LIMIT),
        "severity": seen.level,
        "timestamp": seen.created_at,
        "class": seen.kind,
        "custom_details": details,
    }
    if config.component:
        payload["component"] = config.component
    if config.group or seen.labels.get("group"):
        payload["group"] = config.group or seen.labels["group"]
    return payload


class PagerDutyReceiver(HttpReceiver[PagerDutyConfig]):
    kind = "pagerduty"
    default_per_minute = DEFAULT_PER_MINUTE

    def deliver(self, notification: Notification) -> None:
        key = setting(self._config.routing_key_setting, "PagerDuty routing key")
        self._post(self._config.url, event(notification, key, self._config), notification.id,
                   secrets=(key,))
