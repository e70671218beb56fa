"""The real function app on the local host over real HTTP on loopback, with Azurite: the
"done means" of the foundation, checked the way an operator would with `make run` up."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import function_app
from pitcrew.auth import encode_principal
from pitcrew_dev.host import build_host, serving
from pitcrew_dev.send import send_sample
from tests.conftest import SAMPLES

KEY = "test-function-key"


@pytest.fixture
def base_url(pitcrew_env: Path) -> Iterator[str]:
    host = build_host(function_app.app, function_key=KEY, settings=os.environ)
    with serving(host) as url:
        # Like the demo policy: notifications go to the host's own inbox.
        pitcrew_env.write_text(
            "version: 1\nchannels:\n  inbox:\n    type: webhook\n"
            f"    url: {url}/_pitcrew/inbox\nroutes:\n  - name: all\n    channels: [inbox]\n"
        )
        yield url


def inbox(url: str) -> list[dict[str, object]]:
    body = httpx.get(f"{url}/_pitcrew/inbox").json()
    return [entry["notification"] for entry in body["notifications"]]


def test_validation_handshake(base_url: str) -> None:
    response = send_sample(
        SAMPLES / "eventgrid-subscription-validation.json",
        base_url=base_url,
        function="on_keyvault_event",
        function_key=KEY,
    )
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    api = httpx.post(
        f"{base_url}/api/events",
        params={"code": KEY},
        content=(SAMPLES / "eventgrid-subscription-validation.json").read_bytes(),
    )
    assert api.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    options = httpx.options(
        f"{base_url}/api/events",
        params={"code": KEY},
        headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
    )
    assert options.status_code == 200
    assert options.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


def test_near_expiry_sample_notifies_exactly_once(base_url: str) -> None:
    for name in ("keyvault-secret-near-expiry.eventgrid.json",) * 3 + (
        "keyvault-secret-near-expiry.cloudevent.json",
    ) * 2:
        response = send_sample(SAMPLES / name, base_url=base_url, function_key=KEY)
        assert response.is_success, response.text
    messages = inbox(base_url)
    # Two distinct events (one per schema, different ids): one notification each, never more.
    assert len(messages) == 2
    assert {m["facts"]["Vault"] for m in messages} == {"sample-kv"}  # type: ignore[index]


def test_malformed_event_is_a_400_naming_the_problem(base_url: str) -> None:
    bad = [
        {
            "id": "1",
            "eventType": "Microsoft.KeyVault.SecretNearExpiry",
            "eventTime": "not-a-time",
            "subject": "s",
            "data": {},
        }
    ]
    webhook = httpx.post(
        f"{base_url}/runtime/webhooks/eventgrid",
        params={"functionName": "on_keyvault_event", "code": KEY},
        headers={"aeg-event-type": "Notification"},
        content=json.dumps(bad),
    )
    assert webhook.status_code in (400, 500)
    api = httpx.post(f"{base_url}/api/events", params={"code": KEY}, content=json.dumps(bad))
    assert api.status_code == 400
    assert api.json()["field"] == "[0].eventTime"
    assert "ISO 8601" in api.json()["message"]
    assert "Traceback" not in api.text
    not_json = httpx.post(f"{base_url}/api/alerts", params={"code": KEY}, content=b"{oops")
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["message"]
    assert inbox(base_url) == []


def test_api_routes_need_the_key(base_url: str) -> None:
    assert httpx.post(f"{base_url}/api/alerts", content=b"{}").status_code == 401
    assert httpx.post(f"{base_url}/api/alerts", params={"code": "wrong"}).status_code == 401
    assert httpx.get(f"{base_url}/api/health").status_code == 200  # anonymous by design


def test_operator_route_needs_a_principal_with_a_role(base_url: str) -> None:
    reader = {"X-MS-CLIENT-PRINCIPAL": encode_principal("alice", ["Reader"])}
    # The host strips client-sent principals unless started with --allow-dev-principal.
    stripped = httpx.get(f"{base_url}/api/audit", params={"code": KEY}, headers=reader)
    assert stripped.status_code == 401


def test_alert_posted_goes_out_once(base_url: str) -> None:
    for _ in range(2):
        response = send_sample(
            SAMPLES / "common-alert-log-quota.json", base_url=base_url, function_key=KEY
        )
        assert response.status_code == 200
    deadline = time.monotonic() + 5
    while not inbox(base_url) and time.monotonic() < deadline:
        time.sleep(0.05)
    (message,) = inbox(base_url)
    # Azure's quota alert is recognised and routed as kind quota (issue 13).
    assert message["kind"] == "quota" and message["status"] == "firing"


def test_operator_route_with_dev_principal(pitcrew_env: Path) -> None:
    host = build_host(
        function_app.app, function_key=KEY, allow_dev_principal=True, settings=os.environ
    )
    with serving(host) as url:
        audit = f"{url}/api/audit"
        assert httpx.get(audit).status_code == 401
        nobody = {"X-MS-CLIENT-PRINCIPAL": encode_principal("eve", ["Contributor"])}
        forbidden = httpx.get(audit, headers=nobody)
        assert forbidden.status_code == 403
        assert "role Reader is required" in forbidden.json()["message"]
        reader = {"X-MS-CLIENT-PRINCIPAL": encode_principal("alice", ["Reader"])}
        allowed = httpx.get(audit, headers=reader)
        assert allowed.status_code == 200
        assert allowed.json()["records"] == [] and allowed.json()["continuation"] is None
