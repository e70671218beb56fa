"""Channels deliver a notification somewhere. Any failure raises DeliveryFailed, whose reason
names what went wrong without the URL or a header value (webhook URLs and auth headers often
embed a token)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping

import httpx

from pitcrew.notify.model import Notification
from pitcrew.policy import Policy, WebhookChannel
from pitcrew.ports import Channel


class DeliveryFailed(Exception):
    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def idempotency_key(notification_id: str) -> str:
    """The `Idempotency-Key` header of a notification: the SHA-256 of its id, in hex. Ids come
    from event and alert ids, which may hold any character (a bidi override, an emoji, a NUL,
    CR/LF); a header must be visible ASCII, and a digest is that while staying unique per id."""
    return hashlib.sha256(notification_id.encode("utf-8", "surrogatepass")).hexdigest()


class WebhookSender:
    """Generic JSON webhook: POST the notification; 2xx is delivered, anything else is not."""

    def __init__(self, name: str, config: WebhookChannel, client: httpx.Client) -> None:
        self.name = name
        self._config = config
        self._client = client

    def deliver(self, notification: Notification) -> None:
        try:
            url = self._config.resolved_url()
        except LookupError as exc:
            raise DeliveryFailed(str(exc)) from None
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key(notification.id),
            "User-Agent": "pitcrew",
        }
        if self._config.headers_setting:
            headers.update(_headers_from_setting(self._config.headers_setting))
        body = json.dumps(notification.to_dict()).encode()
        try:
            response = self._client.post(
                url, content=body, headers=headers, timeout=self._config.timeout_seconds
            )
        except httpx.TimeoutException:
            raise DeliveryFailed(f"timed out after {self._config.timeout_seconds}s") from None
        except httpx.LocalProtocolError as exc:
            # h11 quotes the offending header value (an auth header from a setting) verbatim.
            raise DeliveryFailed(
                f"{type(exc).__name__}: a header or the URL of channel {self.name!r} is not valid"
            ) from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(
                f"{type(exc).__name__}: {_without_url(exc, url, headers)}"
            ) from None
        except UnicodeError as exc:
            # The message would quote part of the value (a URL or header from a setting).
            raise DeliveryFailed(
                f"{type(exc).__name__}: the URL or a header of channel {self.name!r} is not ASCII"
            ) from None
        except Exception as exc:
            # Anything else (an invalid URL, a bug) is a failed attempt too, never a crash: the
            # outbox records it, backs off and escalates like any other failure.
            raise DeliveryFailed(
                f"{type(exc).__name__}: {_without_url(exc, url, headers)}"
            ) from None
        if response.is_success:
            return
        # 4xx other than 408/429 will not heal by itself, but a fixed config should still
        # deliver, so these are retried too, just reported as such.
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        raise DeliveryFailed(f"HTTP {response.status_code}", retryable=retryable)


def _without_url(exc: Exception, url: str, headers: Mapping[str, str]) -> str:
    """The error's message without the URL or any header value (either may hold a token)."""
    text = str(exc)
    request = getattr(exc, "_request", None)
    if request is not None:
        text = text.replace(str(request.url), "<url>")
    if url:
        text = text.replace(url, "<url>")
    for value in headers.values():
        if len(value.strip()) >= 4:
            text = text.replace(value, "<header>").replace(repr(value)[1:-1], "<header>")
    return text[:200]


def _headers_from_setting(name: str) -> dict[str, str]:
    raw = os.environ.get(name, "")
    try:
        headers = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        raise DeliveryFailed(f"app setting {name} is not a JSON object of headers") from None
    if not isinstance(headers, dict):
        raise DeliveryFailed(f"app setting {name} is not a JSON object of headers")
    return {str(k): str(v) for k, v in headers.items()}


def build_channels(policy: Policy, client: httpx.Client) -> dict[str, Channel]:
    return {name: WebhookSender(name, config, client) for name, config in policy.channels.items()}
