"""Slack through an incoming webhook: Block Kit blocks with a plain `text` fallback (what
notifications and clients without blocks show). Kept inside Slack's limits: at most 50 blocks,
a header's text 150 characters, a section's text 3000, at most 10 fields of 2000, a button's
text 75 and its URL 3000. Text is escaped for mrkdwn (&, <, >), so alert content cannot forge
a link or a mention. The webhook URL holds a token, so it lives in an app setting."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from pitcrew.alerting.receivers.base import (
    HttpReceiver,
    SettingName,
    WebhookUrlConfig,
    cut,
    endpoint_setting,
)
from pitcrew.alerting.receivers.render import view
from pitcrew.notify.model import Notification

DEFAULT_PER_MINUTE = 60  # Slack allows about one message a second per webhook
MAX_BLOCKS = 50
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
BUTTON_TEXT_LIMIT = 75
BUTTON_URL_LIMIT = 3000
MAX_BUTTONS = 5
_ICON = {"critical": ":red_circle:", "error": ":red_circle:", "warning": ":large_orange_circle:",
         "info": ":large_blue_circle:"}


class SlackConfig(WebhookUrlConfig):
    """A Slack channel through an incoming webhook."""

    type: Literal["slack"]
    url_label: ClassVar[str] = "Slack webhook URL"
    url_setting: SettingName = Field(
        description="Name of the app setting holding the incoming webhook URL (it embeds a "
        "token; a Key Vault reference in Azure).",
    )


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: the three characters it reads as control sequences."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(notification: Notification) -> dict[str, Any]:
    seen = view(notification)
    state = "RESOLVED" if seen.resolved else seen.level.upper()
    icon = ":large_green_circle:" if seen.resolved else _ICON[seen.level]
    blocks: list[dict[str, Any]] = [
        {"type": "header",
         "text": {"type": "plain_text", "text": cut(f"[{state}] {seen.title}", HEADER_LIMIT),
                  "emoji": True}},
        {"type": "section",
         "text": {"type": "mrkdwn", "text": cut(f"{icon} {escape(seen.summary)}", SECTION_LIMIT)}},
    ]
    facts = seen.facts
    for start in range(0, min(len(facts), 4 * MAX_FIELDS), MAX_FIELDS):
        fields = [{"type": "mrkdwn", "text": cut(f"*{escape(k)}*\n{escape(v)}", FIELD_LIMIT)}
                  for k, v in facts[start:start + MAX_FIELDS]]
        blocks.append({"type": "section", "fields": fields})
    if seen.alerts:
        lines = "\n".join(f"• {escape(cut(a, 300))}" for a in seen.alerts)
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn",
            "text": cut(f"*Alerts in this group ({len(seen.alerts)})*\n{lines}", SECTION_LIMIT)}})
    for label, command in seen.commands[:3]:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn",
            "text": cut(f"{escape(label)}\n```{escape(command)}```", SECTION_LIMIT)}})
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": cut(label, BUTTON_TEXT_LIMIT)},
         "url": url}
        for label, url in seen.links[:MAX_BUTTONS] if len(url) <= BUTTON_URL_LIMIT
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    blocks.append({"type": "context", "elements": [{
        "type": "mrkdwn",
        "text": cut(escape(f"pitcrew · {seen.kind} · group {seen.group_key}"), SECTION_LIMIT)}]})
    fallback = escape(f"[{state}] {seen.title}: {seen.summary}")
    return {"text": cut(fallback, SECTION_LIMIT), "blocks": blocks[:MAX_BLOCKS]}


class SlackReceiver(HttpReceiver[SlackConfig]):
    kind = "slack"
    default_per_minute = DEFAULT_PER_MINUTE

    def deliver(self, notification: Notification) -> None:
        url = endpoint_setting(self._config.url_setting, "Slack webhook URL")
        self._post(url, message(notification), notification.id)
