"""Notifications: the message model, channels, the durable outbox and the router."""

from pitcrew.notify.model import Notification, Severity

__all__ = ["Notification", "Severity"]
