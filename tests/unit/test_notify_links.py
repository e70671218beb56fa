"""Issue 9.10: a notification carries only absolute https links (or pitcrew's own base URL);
issue 9.2: the Idempotency-Key is header-safe for any id."""

from __future__ import annotations

import pytest

from pitcrew.notify.channels import idempotency_key
from pitcrew.notify.model import Action, Notification


def notification(*actions: Action) -> Notification:
    return Notification(
        id="x", dedup_key="x", kind="deadletter", severity="warning", status="firing",
        title="t", summary="s", correlation_id="c", actions=actions,
    )


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,x", "http://example.com/", "docs/deadletter.md",
     "//evil.example/", "https://u:p@evil.example/", "https://example.com/\r\nX: y"],
)
def test_unsafe_links_never_leave(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PITCREW_PUBLIC_BASE_URL", raising=False)
    sent = notification(
        Action(label="Follow the runbook", url=url),
        Action(label="Open it", url=url, command="pitcrew dlq show g1"),
    ).to_dict()
    assert sent["actions"] == [{"label": "Open it", "command": "pitcrew dlq show g1"}]


def test_https_and_own_base_links_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITCREW_PUBLIC_BASE_URL", "http://127.0.0.1:7071")
    sent = notification(
        Action(label="Runbook", url="https://runbooks.contoso.com/a?b=c#d"),
        Action(label="Open the group", url="http://127.0.0.1:7071/api/dlq/groups/g1"),
        Action(label="Elsewhere on loopback", url="http://127.0.0.1:9999/x"),
    ).to_dict()
    assert [a.get("url") for a in sent["actions"]] == [
        "https://runbooks.contoso.com/a?b=c#d",
        "http://127.0.0.1:7071/api/dlq/groups/g1",
    ]


@pytest.mark.parametrize("notification_id", ["expiry:\u202eevil", "a\x00b", "a\r\nb", "\N{KEY}"])
def test_idempotency_key_is_a_visible_ascii_token(notification_id: str) -> None:
    key = idempotency_key(notification_id)
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    assert key != idempotency_key(notification_id + "x")
