"""Receivers over HTTP against a real local peer: each payload checked against the service's
documented shape and limits; Retry-After and the rate cap honoured; no key or URL in an error."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pitcrew.alerting.receivers import RECEIVER_CONFIGS, build_receivers
from pitcrew.alerting.receivers.base import DeliveryFailed, RateGate, idempotency_key, retry_after
from pitcrew.alerting.receivers.pagerduty import PagerDutyConfig, PagerDutyReceiver
from pitcrew.alerting.receivers.slack import SlackConfig, SlackReceiver
from pitcrew.alerting.receivers.teams import TeamsConfig, TeamsReceiver
from pitcrew.alerting.receivers.webhook import WebhookConfig, WebhookReceiver
from pitcrew.notify.model import Action, Notification
from tests.integration.http_peer import Peer

ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def note(**changes: Any) -> Notification:
    base = Notification(
        id="alert:/subscriptions/x/alerts/1|Fired|2026-11-21T13:58:24+00:00",
        dedup_key="/subscriptions/x/alerts/1", kind="alert", severity="critical",
        status="firing", title="[Fired] sb-deadletter-depth (Sev1) on sample-sb",
        summary="Dead-lettered messages above 0 <@channel> & more", correlation_id="c1",
        facts={"Severity": "Sev1", "Targets": "sample-sb", "Value": "42"},
        actions=(Action("Open the alert in the portal", "https://portal.azure.com/#x"),
                 Action("Bad link", "javascript:alert(1)"),
                 Action("Check it", command="az servicebus queue show")),
    )
    return dataclasses.replace(base, **changes)


def test_every_config_is_a_discriminated_model() -> None:
    kinds = [c.model_fields["type"].annotation.__args__[0] for c in RECEIVER_CONFIGS]
    assert kinds == ["webhook", "pagerduty", "teams", "slack", "email", "eventgrid"]


def test_webhook_behaviour_kept(peer: Peer, client: httpx.Client) -> None:
    hook = WebhookReceiver("hook", WebhookConfig(type="webhook", url=peer.url), client)
    n = note()
    hook.deliver(n)
    assert peer.bodies[0] == json.loads(json.dumps(n.to_dict()))
    assert peer.headers[0]["idempotency-key"] == idempotency_key(n.id)
    assert peer.headers[0]["content-type"] == "application/json"


def test_pagerduty_trigger_then_resolve(peer: Peer, client: httpx.Client,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    peer.ok = (202, {"Content-Type": "application/json"},
               b'{"status":"success","message":"Event processed"}')
    config = PagerDutyConfig(type="pagerduty", routing_key_setting="PD_KEY", url=peer.url)
    pager = PagerDutyReceiver("pager", config, client, gate=RateGate(100))
    long_title = "x" * 5000
    pager.deliver(note(title=long_title))
    pager.deliver(note(id="alert:1|Resolved", status="resolved", severity="info"))
    trigger, resolve = peer.bodies
    # Events API v2: routing_key, event_action, dedup_key (<= 255), payload.summary (<= 1024),
    # payload.source, payload.severity in the four levels.
    assert trigger["routing_key"] == ROUTING_KEY and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "/subscriptions/x/alerts/1"
    payload = trigger["payload"]
    assert len(payload["summary"]) == 1024 and payload["source"] == "sample-sb"
    assert payload["severity"] == "error"  # Sev1 is PagerDuty's error
    assert payload["severity"] in ("critical", "error", "warning", "info")
    assert datetime.fromisoformat(payload["timestamp"])
    assert trigger["links"] == [{"href": "https://portal.azure.com/#x",
                                 "text": "Open the alert in the portal"}]
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                       "dedup_key": "/subscriptions/x/alerts/1"}


def test_pagerduty_uses_the_group_key_and_hashes_a_long_one(
    peer: Peer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    config = PagerDutyConfig(type="pagerduty", routing_key_setting="PD_KEY", url=peer.url)
    pager = PagerDutyReceiver("pager", config, client, gate=RateGate(100))

    pager.deliver(dataclasses.replace(note(), group_key="{}/{alertname=\"x\"}" + "k" * 300,
                                      labels={"severity": "warning"},
                                      alerts=(note(title="a1"),)))
    sent = peer.bodies[0]
    assert sent["dedup_key"].startswith("sha256:") and len(sent["dedup_key"]) <= 255
    assert sent["payload"]["severity"] == "warning"
    assert sent["payload"]["custom_details"]["alerts"] == ["a1"]


def test_pagerduty_key_missing_or_refused_never_leaks(
    peer: Peer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = PagerDutyConfig(type="pagerduty", routing_key_setting="PD_KEY", url=peer.url)
    pager = PagerDutyReceiver("pager", config, client, gate=RateGate(100))
    with pytest.raises(DeliveryFailed, match="app setting PD_KEY"):
        pager.deliver(note())
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    peer.script = [(400, {}, b'{"status":"invalid event","errors":["' + ROUTING_KEY.encode()
                    + b'"]}')]
    with pytest.raises(DeliveryFailed) as failed:
        pager.deliver(note())
    assert failed.value.reason == "HTTP 400" and not failed.value.retryable
    assert ROUTING_KEY not in str(failed.value)


def test_429_retry_after_holds_the_receiver_and_reaches_the_outbox(
    peer: Peer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    config = PagerDutyConfig(type="pagerduty", routing_key_setting="PD_KEY", url=peer.url)
    pager = PagerDutyReceiver("pager", config, client, gate=RateGate(100))
    peer.script = [(429, {"Retry-After": "120"}, b"")]
    with pytest.raises(DeliveryFailed) as first:
        pager.deliver(note())
    assert first.value.retryable and first.value.retry_after_seconds == 120
    # Held shut: the next delivery does not reach the service at all.
    with pytest.raises(DeliveryFailed, match="Retry-After") as held:
        pager.deliver(note())
    assert len(peer.bodies) == 1 and 0 < (held.value.retry_after_seconds or 0) <= 120


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after({"retry-after": "30"}) == 30
    assert retry_after({"retry-after": later}, now=now) == 90
    assert retry_after({"retry-after": "999999"}) == 3600
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_rate_cap_per_receiver() -> None:
    clock = [0.0]
    gate = RateGate(2, clock=lambda: clock[0])
    gate.admit("r")
    gate.admit("r")
    with pytest.raises(DeliveryFailed, match="cap of 2 a minute") as capped:
        gate.admit("r")
    assert capped.value.retry_after_seconds == pytest.approx(30)
    clock[0] = 30.0
    gate.admit("r")


def test_teams_adaptive_card_envelope(peer: Peer, client: httpx.Client,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAMS_URL", peer.url)
    peer.ok = (202, {}, b"")
    teams = TeamsReceiver("teams", TeamsConfig(type="teams", url_setting="TEAMS_URL"), client,
                          gate=RateGate(100))
    teams.deliver(note(facts={f"f{i}": "v" * 3000 for i in range(40)}))
    body = peer.bodies[0]
    assert body["type"] == "message" and len(body["attachments"]) == 1
    attachment = body["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and float(card["version"]) >= 1.4
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["body"][0]["type"] == "TextBlock" and card["body"][0]["wrap"] is True
    facts = next(b for b in card["body"] if b["type"] == "FactSet")["facts"]
    assert all(set(f) == {"title", "value"} for f in facts)
    assert [a["url"] for a in card["actions"]] == ["https://portal.azure.com/#x"]
    assert all(a["type"] == "Action.OpenUrl" for a in card["actions"])
    assert len(json.dumps(body).encode()) <= 28_000


def test_slack_blocks_within_limits(peer: Peer, client: httpx.Client,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_URL", peer.url)
    slack = SlackReceiver("slack", SlackConfig(type="slack", url_setting="SLACK_URL"), client,
                          gate=RateGate(100))
    slack.deliver(note(title="t" * 400, summary="s" * 9000,
                       facts={f"f{i}": "<!here>" * 500 for i in range(60)}))
    body = peer.bodies[0]
    assert isinstance(body["text"], str) and body["text"]  # the fallback
    blocks = body["blocks"]
    assert len(blocks) <= 50
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    assert blocks[0]["text"]["type"] == "plain_text"
    for block in blocks:
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= 3000
            for item in block.get("fields", []):
                assert len(item["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "actions":
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= 75 and button["url"].startswith("https://")
    # Alert text cannot forge a mention or a link.
    assert "<!here>" not in json.dumps(blocks) and "&lt;!here&gt;" in json.dumps(blocks)


def test_build_receivers_from_a_policy_map(peer: Peer, client: httpx.Client) -> None:
    class Policy:
        receivers = {
            "hook": WebhookConfig(type="webhook", url=peer.url),
            "pager": PagerDutyConfig(type="pagerduty", routing_key_setting="PD_KEY"),
        }

    built = build_receivers(Policy(), client)
    assert sorted(built) == ["hook", "pager"]
    assert built["pager"].name == "pager"


@pytest.mark.parametrize("kind", ["webhook", "slack", "teams"])
def test_an_endpoint_setting_that_is_not_https_is_refused_at_delivery_naming_only_the_setting(
        kind: str, peer: Peer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notification (and any auth header) never goes over plain http to a remote host; the
    failure names the setting, never its value (such URLs embed a token)."""
    configs = {"webhook": (WebhookConfig, WebhookReceiver), "slack": (SlackConfig, SlackReceiver),
               "teams": (TeamsConfig, TeamsReceiver)}
    config_type, receiver_type = configs[kind]
    receiver = receiver_type(kind, config_type(type=kind, url_setting="HOOK_URL"), client,
                             gate=RateGate(100))
    for url in ("http://hooks.example.com/T0KEN-in-the-path", "ftp://hooks.example.com/x",
                "https://user:T0KEN-in-the-path@hooks.example.com/x"):
        monkeypatch.setenv("HOOK_URL", url)
        for _ in range(2):  # refused every time, not only the first
            with pytest.raises(DeliveryFailed) as refused:
                receiver.deliver(note())
            assert "HOOK_URL" in str(refused.value) and "T0KEN" not in str(refused.value)
    monkeypatch.setenv("HOOK_URL", peer.url)  # loopback http: the local peer
    receiver.deliver(note())
    assert len(peer.bodies) == 1


def test_a_webhook_url_in_the_policy_must_be_https() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="https"):
        WebhookConfig(type="webhook", url="http://hooks.example.com/x")
    WebhookConfig(type="webhook", url="https://hooks.example.com/x")
    WebhookConfig(type="webhook", url="http://127.0.0.1:9/x")  # loopback: the local host


@pytest.mark.parametrize("value", ["https://[::1:SUPERSECRETV6]/x",
                                   "https://127.0.0.1:SUPERSECRETPORT/x"])
def test_a_malformed_url_setting_is_refused_without_quoting_it(
        value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.alerting.receivers.base import endpoint_setting

    monkeypatch.setenv("HOOK_URL", value)
    with pytest.raises(DeliveryFailed) as refused:
        endpoint_setting("HOOK_URL", "webhook URL")
    assert "HOOK_URL" in str(refused.value) and "SUPERSECRET" not in str(refused.value)
