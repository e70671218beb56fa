"""What the alerting pipeline keeps: groups, the alerts in them, the notification log and
silences. Plain data; the stores (pitcrew.alerting.ports) persist it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pitcrew.alerting.policy import Matcher
from pitcrew.notify.model import Notification

AlertStatus = Literal["firing", "resolved"]


@dataclass
class Group:
    """Alerts that one route groups together, sent to its receiver as one notification."""

    id: str
    """A digest of `key`: the Table key and the id the API shows."""
    key: str
    route: str
    receiver: str
    labels: dict[str, str]
    created_at: datetime
    next_flush_at: datetime | None = None
    """When the group is due to be flushed (None: nothing scheduled)."""
    last_flush_at: datetime | None = None
    flushing_until: datetime | None = None
    """A flush in progress holds the group until then."""
    etag: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "groupKey": self.key, "route": self.route, "receiver": self.receiver,
            "labels": self.labels, "createdAt": self.created_at.isoformat(),
            "nextFlushAt": self.next_flush_at.isoformat() if self.next_flush_at else None,
            "lastFlushAt": self.last_flush_at.isoformat() if self.last_flush_at else None,
        }


@dataclass
class StoredAlert:
    group_id: str
    fingerprint: str
    labels: dict[str, str]
    status: AlertStatus
    starts_at: datetime
    updated_at: datetime
    notification: Notification
    ends_at: datetime | None = None
    etag: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint, "status": self.status, "labels": self.labels,
            "startsAt": self.starts_at.isoformat(),
            "endsAt": self.ends_at.isoformat() if self.ends_at else None,
            "updatedAt": self.updated_at.isoformat(),
            "title": self.notification.title, "notification": self.notification.id,
        }


@dataclass
class LogEntry:
    """The notification log of one group at one receiver: which firing alerts it was told
    about (fingerprint -> the id of the alert's notification it got), when, and how often."""

    group_id: str
    receiver: str
    group_key: str
    firing: dict[str, str] = field(default_factory=dict)
    sent_at: datetime | None = None
    seq: int = 0
    last_notification: str = ""
    etag: str = ""


@dataclass
class Silence:
    id: str
    matchers: list[Matcher]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    expired_by: str = ""
    etag: str = ""

    def state(self, now: datetime) -> Literal["pending", "active", "expired"]:
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def mutes(self, labels: dict[str, str], now: datetime) -> bool:
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id, "matchers": [str(m) for m in self.matchers],
            "startsAt": self.starts_at.isoformat(), "endsAt": self.ends_at.isoformat(),
            "comment": self.comment, "createdBy": self.created_by,
            "createdAt": self.created_at.isoformat(), "updatedAt": self.updated_at.isoformat(),
            "expiredBy": self.expired_by or None, "state": self.state(now),
        }
