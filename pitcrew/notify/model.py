"""What a notification says. Names, times and links only: never a secret value.

Links: a notification carries only absolute https links (`pitcrew.links.safe_link`), or links
under pitcrew's own public base URL (which may be loopback http on the local host). Any other
URL an action was given is left out of what is sent; an action left with nothing to do is
left out too. Builders of links from outside data check them first; this is the last guard.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pitcrew.links import public_base_url, safe_link

Severity = Literal["critical", "warning", "info"]
Status = Literal["firing", "resolved", "info"]


@dataclass(frozen=True)
class Action:
    label: str
    url: str | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"label": self.label}
        url = sendable_link(self.url)
        if url:
            out["url"] = url
        if self.command:
            out["command"] = self.command
        return out

    @property
    def sendable(self) -> bool:
        return bool(self.command or sendable_link(self.url))


def sendable_link(url: str | None) -> str | None:
    """`url` if a notification may carry it: absolute https, or under the public base URL."""
    if not url:
        return None
    safe = safe_link(url)
    if safe:
        return safe
    base = public_base_url()
    if base and url.startswith(base + "/") and safe_link("https://x" + url[len(base):]):
        return url
    return None


@dataclass(frozen=True)
class Notification:
    """One actionable message.

    `id` identifies this delivery (the outbox sends each id once per channel); `dedup_key`
    groups related messages at the receiver (an alert's Fired and Resolved share it) and is the
    alert's fingerprint in the alerting pipeline. `labels` are what routes, groups, silences and
    inhibits it (pitcrew.alerting.labels). A grouped notification (what a receiver is sent)
    has the `group_key` of its group and lists its `alerts` (each a Notification of one alert);
    its status is "resolved" once every alert it lists is.
    """

    id: str
    dedup_key: str
    kind: str
    severity: Severity
    status: Status
    title: str
    summary: str
    correlation_id: str
    facts: dict[str, str] = field(default_factory=dict)
    actions: tuple[Action, ...] = ()
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    labels: dict[str, str] = field(default_factory=dict)
    group_key: str = ""
    alerts: tuple[Notification, ...] = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self._base_dict()
        out["labels"] = dict(self.labels)
        if self.starts_at is not None:
            out["startsAt"] = self.starts_at.isoformat()
        if self.ends_at is not None:
            out["endsAt"] = self.ends_at.isoformat()
        if self.group_key:
            out["groupKey"] = self.group_key
            out["alerts"] = [a.to_dict() for a in self.alerts]
        return out

    def _base_dict(self) -> dict[str, Any]:
        return {
            "schema": "pitcrew.notification/v1",
            "id": self.id,
            "dedupKey": self.dedup_key,
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status,
            "title": self.title,
            "summary": self.summary,
            "facts": self.facts,
            "actions": [a.to_dict() for a in self.actions if a.sendable],
            "correlationId": self.correlation_id,
            "createdAt": self.created_at.isoformat(),
            "source": "pitcrew",
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Notification:
        return cls(
            id=raw["id"],
            dedup_key=raw["dedupKey"],
            kind=raw["kind"],
            severity=raw["severity"],
            status=raw["status"],
            title=raw["title"],
            summary=raw["summary"],
            correlation_id=raw["correlationId"],
            facts=dict(raw.get("facts") or {}),
            actions=tuple(Action(**a) for a in raw.get("actions") or ()),
            created_at=datetime.fromisoformat(raw["createdAt"]),
            labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
            group_key=str(raw.get("groupKey") or ""),
            alerts=tuple(cls.from_dict(a) for a in raw.get("alerts") or ()),
            starts_at=_time(raw.get("startsAt")),
            ends_at=_time(raw.get("endsAt")),
        )


def notice(kind: str, rule: str, severity: Severity, *, id: str, dedup_key: str,
           title: str, summary: str, correlation_id: str, facts: dict[str, str],
           actions: Iterable[Action] = (), status: Status = "firing",
           labels: Mapping[str, str] | None = None,
           created_at: datetime | None = None) -> Notification:
    """A notification pitcrew raises about its own work (a rotation, a dead-letter group, a
    receiver it cannot reach): labelled with its `kind`, its alert `rule` and its `severity`,
    so routes, silences and inhibitions match it, then with the builder's own `labels`."""
    return Notification(
        id=id, dedup_key=dedup_key, kind=kind, severity=severity, status=status, title=title,
        summary=summary, correlation_id=correlation_id, facts=facts, actions=tuple(actions),
        labels={"kind": kind, "alertRule": rule, "severity": severity, **(labels or {})},
        created_at=created_at or datetime.now(UTC),
    )


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass
class OutboxEntry:
    channel: str
    notification: Notification
    status: Literal["pending", "delivered"]
    attempts: int
    next_attempt_at: datetime
    etag: str
    last_error: str = ""
    lease_until: datetime | None = None
    created: bool = False
    """True when `enqueue` wrote this row just now (and so holds its lease)."""
    created_at: datetime | None = None
    delivered_at: datetime | None = None

    @property
    def ref(self) -> str:
        """How the API names this row: receiver and notification id, base64url."""
        raw = json.dumps([self.channel, self.notification.id]).encode("utf-8", "surrogatepass")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @property
    def view_status(self) -> str:
        if self.status == "delivered":
            return "delivered"
        return "failed" if self.attempts else "pending"

    def to_dict(self) -> dict[str, Any]:
        n = self.notification
        return {
            "id": self.ref, "receiver": self.channel, "notification": n.id, "kind": n.kind,
            "title": n.title, "severity": n.severity, "groupKey": n.group_key or None,
            "status": self.view_status, "attempts": self.attempts,
            "lastError": self.last_error or None,
            "nextAttemptAt": self.next_attempt_at.isoformat()
            if self.status != "delivered" else None,
            "createdAt": self.created_at.isoformat() if self.created_at else None,
            "deliveredAt": self.delivered_at.isoformat() if self.delivered_at else None,
        }


@dataclass(frozen=True)
class UnreadableRow:
    """An outbox row that cannot be read back as an entry (a payload another version wrote, a
    hand edit): where it is, how many attempts it holds, and why it cannot be read."""

    key: str
    channel_key: str
    row_key: str
    attempts: int
    etag: str
    error: Exception


DispatchOutcome = Literal["delivered", "queued", "already-delivered", "grouped", "silenced",
                         "inhibited", "muted", "not-notified", "no-channel"]


@dataclass
class Dispatch:
    """Where one notification went, per receiver: delivered now, queued in the outbox for the
    retry timer (the attempt failed, or another run holds it), delivered by an earlier run, or
    added to a group that the pipeline flushes later (`grouped`). A notification muted by a
    silence, an inhibition or a time interval is not sent (`muted_by` says what muted it); a
    Resolved whose Fired nobody was told is not sent either (`reason`). No receiver at all is a
    failure (`no-channel`); the routing tree makes it impossible."""

    delivered: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    grouped: list[str] = field(default_factory=list)
    muted_by: dict[str, list[str]] = field(default_factory=dict)
    reason: str = ""

    @property
    def outcome(self) -> DispatchOutcome:
        """What happened, in one word, for the audit record: never more than did happen."""
        if self.queued:
            return "queued"
        if self.delivered:
            return "delivered"
        if self.grouped:
            return "grouped"
        if self.already:
            return "already-delivered"
        if self.muted_by.get("silences"):
            return "silenced"
        if self.muted_by.get("inhibitedBy"):
            return "inhibited"
        if self.muted_by:
            return "muted"
        if self.reason:
            return "not-notified"
        return "no-channel"

    @property
    def detail(self) -> str:
        """The outcome in a phrase, for a handler's answer."""
        return {
            "delivered": "notification delivered",
            "queued": "notification queued for retry",
            "already-delivered": "notification was delivered before",
            "grouped": "notification grouped; its group is sent after group_wait",
            "silenced": "notification silenced",
            "inhibited": "notification inhibited",
            "muted": "notification muted by a time interval",
            "not-notified": f"notification not sent: {self.reason}",
            "no-channel": f"notification matched no channel: {self.reason}",
        }[self.outcome]

    def merge(self, other: Dispatch) -> None:
        for name in ("delivered", "queued", "already", "grouped"):
            mine: list[str] = getattr(self, name)
            mine += [r for r in getattr(other, name) if r not in mine]
        for key, values in other.muted_by.items():
            self.muted_by.setdefault(key, [])
            self.muted_by[key] += [v for v in values if v not in self.muted_by[key]]
        self.reason = self.reason or other.reason

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "delivered": self.delivered, "queued": self.queued, "already": self.already,
        }
        if self.grouped:
            out["grouped"] = self.grouped
        if self.muted_by:
            out["mutedBy"] = self.muted_by
        if self.reason:
            out["reason"] = self.reason
        return out
