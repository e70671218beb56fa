"""What a notification says. Names, times and links only: never a secret value.

Links: a notification carries only absolute https links (`pitcrew.links.safe_link`), or links
under pitcrew's own public base URL (which may be loopback http on the local host). Any other
URL an action was given is left out of what is sent; an action left with nothing to do is
left out too. Builders of links from outside data check them first; this is the last guard.
"""

from __future__ import annotations

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
    groups related messages at the receiver (an alert's Fired and Resolved share it).
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

    def to_dict(self) -> dict[str, Any]:
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
        )
