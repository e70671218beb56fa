"""What a notification says. Names, times and links only: never a secret value."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
Status = Literal["firing", "resolved", "info"]


@dataclass(frozen=True)
class Action:
    label: str
    url: str | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"label": self.label}
        if self.url:
            out["url"] = self.url
        if self.command:
            out["command"] = self.command
        return out


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
            "actions": [a.to_dict() for a in self.actions],
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
