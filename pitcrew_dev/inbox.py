"""A local inbox for demo notifications: the demo policy's webhook channel posts here.

Notifications are kept in memory (bounded) and printed to the terminal, so a developer sees
what an on-call engineer would receive without any chat or paging service.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_SEVERITY_STYLE = {
    "critical": "bold white on red",
    "error": "bold red",
    "high": "bold red",
    "warning": "bold yellow",
    "medium": "yellow",
    "info": "cyan",
    "informational": "cyan",
    "low": "cyan",
}


# Worth a line in the terminal; ids, schema and timestamps stay in GET /_pitcrew/inbox.
_SHOWN_SCALARS = ("status", "kind", "dedupKey")


class Inbox:
    """Thread-safe, bounded list of received notifications (oldest dropped first)."""

    def __init__(self, capacity: int = 1000, console: Any = None) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._console = console

    def add(self, notification: Mapping[str, Any]) -> int:
        entry = {"receivedAt": datetime.now(UTC).isoformat(), "notification": dict(notification)}
        with self._lock:
            self._items.append(entry)
            count = len(self._items)
        self._print(notification)
        return count

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _print(self, notification: Mapping[str, Any]) -> None:
        from rich.console import Console
        from rich.panel import Panel
        from rich.table import Table

        console = self._console or Console(stderr=True)
        severity = str(notification.get("severity") or "info")
        title = str(notification.get("title") or notification.get("subject") or "notification")
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        summary = notification.get("summary") or notification.get("text")
        if summary:
            table.add_row("summary", str(summary))
        for name, value in _facts(notification.get("facts")):
            table.add_row(name, value)
        for key in _SHOWN_SCALARS:
            scalar = notification.get(key)
            if isinstance(scalar, str | int | float | bool):
                table.add_row(key, str(scalar))
        for label, target in _actions(notification.get("actions")):
            table.add_row("action", f"{label}: {target}" if target else label)
        style = _SEVERITY_STYLE.get(severity.lower(), "bold")
        console.print(
            Panel(
                table,
                title=f"[{style}]{severity.upper()}[/] {title}",
                title_align="left",
                subtitle="pitcrew inbox",
                subtitle_align="right",
            )
        )


def _facts(raw: Any) -> list[tuple[str, str]]:
    """Facts as name/value pairs, whether sent as an object or a list of {name, value}."""
    if isinstance(raw, Mapping):
        return [(str(k), str(v)) for k, v in raw.items()]
    if isinstance(raw, list):
        pairs = []
        for item in raw:
            if isinstance(item, Mapping):
                name = item.get("name") or item.get("title") or item.get("key") or ""
                pairs.append((str(name), str(item.get("value", ""))))
        return pairs
    return []


def _actions(raw: Any) -> list[tuple[str, str]]:
    """Suggested actions as (label, url or command)."""
    if not isinstance(raw, list):
        return []
    return [
        (str(a.get("label") or "action"), str(a.get("url") or a.get("command") or ""))
        for a in raw
        if isinstance(a, Mapping)
    ]
