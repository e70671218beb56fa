"""One reading of a notification for every receiver: what it says, in the order a person reads
it. Works with the grouped notification (labels, group key, status, alerts) and with the plain
one (those fields absent): each is read with a default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pitcrew.links import public_base_url
from pitcrew.notify.model import Notification, sendable_link

Level = Literal["critical", "error", "warning", "info"]
LEVELS: tuple[Level, ...] = ("critical", "error", "warning", "info")
# Azure Monitor's own names for its severities (Sev0 Critical ... Sev4 Verbose).
AZURE_LEVEL: dict[str, Level] = {
    "Sev0": "critical", "Sev1": "error", "Sev2": "warning", "Sev3": "info", "Sev4": "info",
}


@dataclass(frozen=True)
class View:
    title: str
    summary: str
    status: str
    level: Level
    group_key: str
    labels: dict[str, str]
    facts: list[tuple[str, str]]
    links: list[tuple[str, str]]
    commands: list[tuple[str, str]]
    alerts: list[str]
    kind: str
    created_at: str

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"


def view(notification: Notification) -> View:
    labels = _str_map(getattr(notification, "labels", None))
    status = str(getattr(notification, "status", "firing") or "firing")
    group_key = str(getattr(notification, "group_key", "") or notification.dedup_key)
    links: list[tuple[str, str]] = []
    commands: list[tuple[str, str]] = []
    for action in notification.actions:
        url = sendable_link(action.url)
        if url:
            links.append((action.label, url))
        if action.command:
            commands.append((action.label, action.command))
    return View(
        title=notification.title,
        summary=notification.summary,
        status=status,
        level=level(notification, labels),
        group_key=group_key,
        labels=labels,
        facts=[(str(k), str(v)) for k, v in notification.facts.items()],
        links=links,
        commands=commands,
        alerts=[alert_line(a) for a in getattr(notification, "alerts", None) or ()],
        kind=notification.kind,
        created_at=notification.created_at.isoformat(),
    )


def level(notification: Notification, labels: Mapping[str, str] | None = None) -> Level:
    """critical, error, warning or info: a `severity` label when it is one of those, else the
    Azure severity the alert carried (Sev1 is error), else the notification's severity."""
    labels = labels if labels is not None else _str_map(getattr(notification, "labels", None))
    named = labels.get("severity", "")
    if named in LEVELS:
        return named
    azure = AZURE_LEVEL.get(labels.get("azure_severity", "") or notification.facts.get(
        "Severity", ""))
    if azure is not None and notification.severity != "info":
        return azure
    severity = str(notification.severity)
    return severity if severity in LEVELS else "warning"


def alert_line(alert: Any) -> str:
    """One line for one alert of a group, whatever shape the group holds it in."""
    if isinstance(alert, Mapping):
        for key in ("title", "summary", "name", "id"):
            if alert.get(key):
                return str(alert[key])
        return ", ".join(f"{k}={v}" for k, v in list(alert.items())[:6])
    for attr in ("title", "summary", "name", "id"):
        value = getattr(alert, attr, None)
        if value:
            return str(value)
    return str(alert)


def console_link() -> str | None:
    base = public_base_url()
    return base or None


def _str_map(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): str(v) for k, v in raw.items()}
