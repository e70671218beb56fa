"""Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook request is
received"): a message whose one attachment is an Adaptive Card (1.4). Office 365 connectors
(MessageCard) are retired, so this is the only Teams shape sent. The Workflows URL embeds a
signature, so it lives in an app setting; 2xx (Workflows answers 202) is delivered."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from pydantic import Field

from pitcrew.alerting.receivers.base import (
    HttpReceiver,
    SettingName,
    WebhookUrlConfig,
    cut,
    endpoint_setting,
)
from pitcrew.alerting.receivers.render import View, view
from pitcrew.notify.model import Notification

DEFAULT_PER_MINUTE = 30
CARD_VERSION = "1.4"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 28_000  # Teams refuses messages over about 28 KB
MAX_FACTS = 30
MAX_ACTIONS = 6
_COLOR = {"critical": "Attention", "error": "Attention", "warning": "Warning", "info": "Accent"}


class TeamsConfig(WebhookUrlConfig):
    """A Teams channel through a Workflows webhook."""

    type: Literal["teams"]
    url_label: ClassVar[str] = "Teams Workflows webhook URL"
    url_setting: SettingName = Field(
        description="Name of the app setting holding the Workflows webhook URL (it embeds a "
        "signature; a Key Vault reference in Azure).",
    )


def message(notification: Notification) -> dict[str, Any]:
    """The Workflows webhook body: `{"type": "message", "attachments": [<Adaptive Card>]}`,
    kept under Teams' message size by dropping alert lines, then facts, when it must."""
    seen = view(notification)
    alerts = seen.alerts[:20]
    facts = seen.facts[:MAX_FACTS]
    while True:
        body = _envelope(_card(seen, facts, alerts, len(seen.alerts)))
        if len(json.dumps(body).encode()) <= MAX_MESSAGE_BYTES or not (alerts or facts):
            return body
        if alerts:
            alerts = alerts[: len(alerts) // 2]
        else:
            facts = facts[: len(facts) // 2]


def _envelope(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _card(seen: View, facts: list[tuple[str, str]], alerts: list[str],
          total_alerts: int) -> dict[str, Any]:
    state = "RESOLVED" if seen.resolved else seen.level.upper()
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": cut(f"[{state}] {seen.title}", 400), "size": "Large",
         "weight": "Bolder", "wrap": True,
         "color": "Good" if seen.resolved else _COLOR[seen.level]},
        {"type": "TextBlock", "text": cut(seen.summary, 4000), "wrap": True},
    ]
    if facts:
        body.append({"type": "FactSet", "facts": [
            {"title": cut(k, 100), "value": cut(v, 1000)} for k, v in facts]})
    if alerts:
        body.append({"type": "TextBlock", "text": f"Alerts in this group ({total_alerts})",
                     "weight": "Bolder", "wrap": True})
        lines = "\n".join(f"- {cut(a, 300)}" for a in alerts)
        if total_alerts > len(alerts):
            lines += f"\n- … and {total_alerts - len(alerts)} more"
        body.append({"type": "TextBlock", "text": lines, "wrap": True})
    for label, command in seen.commands[:3]:
        body.append({"type": "TextBlock", "text": cut(label, 200), "wrap": True,
                     "isSubtle": True})
        body.append({"type": "TextBlock", "text": cut(command, 1000), "wrap": True,
                     "fontType": "Monospace"})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    actions = [{"type": "Action.OpenUrl", "title": cut(label, 100), "url": url}
               for label, url in seen.links[:MAX_ACTIONS]]
    if actions:
        card["actions"] = actions
    return card


class TeamsReceiver(HttpReceiver[TeamsConfig]):
    kind = "teams"
    default_per_minute = DEFAULT_PER_MINUTE

    def deliver(self, notification: Notification) -> None:
        url = endpoint_setting(self._config.url_setting, "Teams Workflows webhook URL")
        self._post(url, message(notification), notification.id)
