"""Channels deliver a notification somewhere: the receivers of pitcrew.alerting.receivers (the
generic webhook moved there). Kept for the names older code imports: DeliveryFailed,
idempotency_key, WebhookSender and build_channels."""

from __future__ import annotations

from pitcrew.alerting.receivers import build_receivers
from pitcrew.alerting.receivers.base import DeliveryFailed, idempotency_key
from pitcrew.alerting.receivers.webhook import WebhookSender

build_channels = build_receivers

__all__ = ["DeliveryFailed", "WebhookSender", "build_channels", "idempotency_key"]
