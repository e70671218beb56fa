"""The generic JSON webhook: one POST of the notification (pitcrew.notification/v1) per
delivery, `Idempotency-Key` set; 2xx is delivered, anything else is not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import Field, HttpUrl, model_validator

from pitcrew.alerting.receivers.base import (
    DeliveryFailed,
    RateGate,
    ReceiverConfig,
    check_endpoint,
    check_setting_name,
    endpoint_setting,
    exactly_one,
    headers_from_setting,
    idempotency_key,
    post_json,
    rate_gate,
    setting,
    unread_settings,
)
from pitcrew.notify.model import Notification

DEFAULT_PER_MINUTE = 600


class WebhookConfig(ReceiverConfig):
    """A generic JSON webhook: one POST per notification, `Idempotency-Key` header set."""

    type: Literal["webhook"]
    url: HttpUrl | None = Field(default=None, description="The endpoint, when it holds no token.")
    url_setting: str | None = Field(
        default=None,
        description="Name of the app setting holding the URL (a Key Vault reference in Azure), "
        "for URLs that embed a token.",
    )
    headers_setting: str | None = Field(
        default=None,
        description="Name of an app setting holding extra headers as JSON (e.g. an auth header).",
    )

    @model_validator(mode="after")
    def _one_url_source(self) -> WebhookConfig:
        exactly_one(self, "url")
        if self.url is not None:
            check_endpoint(str(self.url))  # a ValueError: policy validate names `url`
        check_setting_name(self.url_setting)
        check_setting_name(self.headers_setting)
        return self

    def settings_problems(self, env: Mapping[str, str]) -> dict[str, str]:
        url, headers = self.url_setting, self.headers_setting
        return unread_settings({
            "url_setting": (lambda: endpoint_setting(url, "webhook URL", env)) if url else None,
            # Unset, a delivery goes without the headers (and is likely refused): a policy that
            # names the setting means it to be there.
            "headers_setting": (lambda: (setting(headers, "extra headers", env),
                                         headers_from_setting(headers, env)))
            if headers else None,
        })


def resolved_url(config: Any) -> str:
    """The URL the config gives, or the value of its setting (DeliveryFailed when unset)."""
    if getattr(config, "url", None) is not None:
        url = str(config.url)
        try:
            return str(check_endpoint(url))
        except ValueError as exc:
            raise DeliveryFailed(f"the webhook url {exc}") from None
    return endpoint_setting(config.url_setting, "webhook URL")


class WebhookReceiver:
    """POSTs `notification.to_dict()`. Takes a WebhookConfig (or the policy's older webhook
    channel, which has the same fields less `max_per_minute`)."""

    def __init__(self, name: str, config: Any, client: httpx.Client,
                 gate: RateGate | None = None) -> None:
        self.name = name
        self._config = config
        self._client = client
        per_minute = getattr(config, "max_per_minute", None) or DEFAULT_PER_MINUTE
        self._gate = gate or rate_gate("webhook", name, per_minute)

    def deliver(self, notification: Notification) -> None:
        url = resolved_url(self._config)
        headers = {"Idempotency-Key": idempotency_key(notification.id)}
        if self._config.headers_setting:
            headers.update(headers_from_setting(self._config.headers_setting))
        post_json(self._client, url, notification.to_dict(), name=self.name, gate=self._gate,
                  timeout=self._config.timeout_seconds, headers=headers)


WebhookSender = WebhookReceiver
