"""Event intake through the real function app on the local host, over real HTTP with Azurite:
poison events on the Event Grid webhook are acknowledged without a traceback and listed at
/api/events/rejected; every body route refuses deep nesting with a 400; the OPTIONS allow-list
and CloudEvents binary mode on /api/events."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import function_app
from pitcrew.auth import encode_principal
from pitcrew_dev.host import build_host, serving
from pitcrew_dev.send import send_sample
from tests.conftest import SAMPLES

KEY = "intake-test-key"
TOPIC = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv"
READER = {"X-MS-CLIENT-PRINCIPAL": encode_principal("alice", ["Reader", "Rotator"])}


@pytest.fixture
def base_url(pitcrew_env: Path) -> Iterator[str]:
    host = build_host(
        function_app.app, function_key=KEY, allow_dev_principal=True, settings=os.environ
    )
    with serving(host) as url:
        pitcrew_env.write_text(
            "version: 1\nchannels:\n  inbox:\n    type: webhook\n"
            f"    url: {url}/_pitcrew/inbox\nroutes:\n  - name: all\n    channels: [inbox]\n"
        )
        yield url


def inbox(url: str) -> list[dict[str, object]]:
    return [e["notification"] for e in httpx.get(f"{url}/_pitcrew/inbox").json()["notifications"]]


def notify(url: str, events: object, function: str = "on_keyvault_event") -> httpx.Response:
    return httpx.post(
        f"{url}/runtime/webhooks/eventgrid",
        params={"functionName": function, "code": KEY},
        headers={"aeg-event-type": "Notification", "content-type": "application/json"},
        content=json.dumps(events),
    )


def test_poison_event_on_the_webhook_is_acknowledged_without_a_traceback(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    poison = json.loads((SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_text())
    poison[0]["id"] = "poison-on-host"
    poison[0]["data"]["ObjectName "] = "../../etc"
    caplog.set_level(logging.INFO)
    response = notify(base_url, poison)
    # 2xx: Event Grid stops retrying now, instead of 30 attempts over 24 hours.
    assert response.status_code == 202, response.text
    assert not any(r.exc_info for r in caplog.records), "a traceback reached the host's output"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("data.ObjectName" in w and "poison-on-host" in w for w in warnings)
    assert inbox(base_url) == []
    listed = httpx.get(f"{base_url}/api/events/rejected", headers=READER)
    assert listed.status_code == 200
    (row,) = [r for r in listed.json()["rejected"] if r["eventId"] == "poison-on-host"]
    assert row["field"] == "data.ObjectName" and row["function"] == "on_keyvault_event"
    assert httpx.get(f"{base_url}/api/events/rejected").status_code == 401
    # The dead-letter trigger behaves the same.
    bad_sb = json.loads((SAMPLES / "servicebus-deadletter-available.eventgrid.json").read_text())
    bad_sb[0]["data"] = "not an object"
    assert notify(base_url, bad_sb, "on_servicebus_deadletter").status_code == 202


def test_cloudevent_on_the_webhook_is_claimed_by_source_and_id(base_url: str) -> None:
    for _ in range(2):
        response = send_sample(SAMPLES / "keyvault-secret-near-expiry.cloudevent.json",
                               base_url=base_url, function_key=KEY)
        assert response.status_code == 202
    assert len(inbox(base_url)) == 1


@pytest.mark.parametrize("route", ["events", "alerts", "rotations"])
def test_deep_nesting_is_a_400_on_every_body_route(base_url: str, route: str) -> None:
    response = httpx.post(
        f"{base_url}/api/{route}", params={"code": KEY}, headers=READER, content=b"[" * 100_000
    )
    assert response.status_code == 400, response.text
    assert "deeper than 64" in response.json()["message"]


def test_options_allow_list_and_binary_mode_over_http(base_url: str) -> None:
    url = f"{base_url}/api/events"
    good = httpx.options(url, params={"code": KEY},
                         headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert good.status_code == 200 and good.headers["WebHook-Allowed-Rate"] == "120"
    bad = httpx.options(url, params={"code": KEY},
                        headers={"WebHook-Request-Origin": "evil.example"})
    assert bad.status_code == 400 and "eventgrid.azure.net" in bad.json()["message"]
    data = json.loads((SAMPLES / "keyvault-secret-near-expiry.cloudevent.json").read_text())
    binary = httpx.post(url, params={"code": KEY}, content=json.dumps(data["data"]), headers={
        "content-type": "application/json", "ce-specversion": "1.0", "ce-id": "binary-on-host",
        "ce-source": TOPIC, "ce-type": "Microsoft.KeyVault.SecretNearExpiry",
    })
    assert binary.status_code == 200, binary.text
    assert binary.json()["events"][0]["outcome"] == "handled"
    assert len(inbox(base_url)) == 1
