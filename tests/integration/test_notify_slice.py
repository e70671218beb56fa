"""The first complete slice against Azurite and a real webhook receiver on loopback:
Key Vault expiry event -> one actionable notification + audit record, exactly once; alerts; the
durable outbox when the channel fails, then recovers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pitcrew.bootstrap import get_services
from pitcrew.errors import RetryLater
from pitcrew.events import BindingEvent
from pitcrew.http import errors, operator
from pitcrew.intake import api as intake_api
from pitcrew.intake.api import drain_outbox
from pitcrew.intake.pipeline import handle_delivered_event
from pitcrew.notify.channels import idempotency_key
from tests.conftest import SAMPLES
from tests.receiver import Receiver


class api:
    HttpResult = errors.HttpResult
    receive_events = staticmethod(intake_api.receive_events)
    receive_alert = staticmethod(intake_api.receive_alert)
    health = staticmethod(operator.health)

pytestmark = pytest.mark.usefixtures("pitcrew_env")


def near_expiry_body(event_id: str | None = None, event_type: str | None = None) -> bytes:
    events = json.loads((SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_text())
    if event_id:
        events[0]["id"] = event_id
    if event_type:
        events[0]["eventType"] = event_type
        for kind in ("Certificate", "Secret", "Key"):
            if event_type.removeprefix("Microsoft.KeyVault.").startswith(kind):
                events[0]["data"]["ObjectType"] = kind
                break
    return json.dumps(events).encode()


def post_events(body: bytes) -> api.HttpResult:
    return api.receive_events("POST", {"Content-Type": "application/json"}, body)


def audit_records(target: str | None = None) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    records = get_services().audit.query(
        since=now - timedelta(hours=1), until=now + timedelta(minutes=1), target=target
    )
    return [r.to_dict() for r in records]


@pytest.mark.parametrize(
    "event_type",
    [
        "Microsoft.KeyVault.SecretNearExpiry",
        "Microsoft.KeyVault.SecretExpired",
        "Microsoft.KeyVault.KeyNearExpiry",
        "Microsoft.KeyVault.CertificateNearExpiry",
    ],
)
def test_expiry_event_notifies_once(receiver: Receiver, event_type: str) -> None:
    body = near_expiry_body(event_type=event_type)
    first = post_events(body)
    assert first.status == 200, first.body
    assert first.body["events"][0]["outcome"] == "handled"
    for _ in range(3):
        again = post_events(body)
        assert again.status == 200
        assert again.body["events"][0]["outcome"] == "duplicate"
    assert len(receiver.received) == 1
    message = receiver.received[0]
    assert message["kind"] == "expiry"
    assert "sample-kv" in message["title"] and "cosmos-primary-key" in message["title"]
    assert message["facts"]["Vault"] == "sample-kv"
    assert message["facts"]["Expires"].startswith("2025-12-21")
    assert message["actions"], "an actionable notification says what to do"
    # A digest of the id: header-safe whatever characters the event id holds.
    assert receiver.headers[0]["Idempotency-Key"] == idempotency_key(message["id"])
    records = audit_records()
    assert len(records) == 1
    record = records[0]
    assert record["action"] == "notify.expiry"
    assert record["outcome"] == "delivered"
    assert record["correlationId"] == "00eccf70-95a7-4e7c-8299-2eb17ee9ad64"
    assert record["actor"].startswith("app:pitcrew")


def test_cloudevent_sample_notifies(receiver: Receiver) -> None:
    body = (SAMPLES / "keyvault-secret-near-expiry.cloudevent.json").read_bytes()
    result = api.receive_events("POST", {"content-type": "application/cloudevents+json"}, body)
    assert result.status == 200
    assert len(receiver.received) == 1


def test_binding_trigger_path_is_idempotent(receiver: Receiver) -> None:
    raw = json.loads(near_expiry_body())[0]
    binding = BindingEvent(
        id=raw["id"],
        event_type=raw["eventType"],
        subject=raw["subject"],
        topic=raw["topic"],
        event_time=raw["eventTime"],
        data=raw["data"],
        data_version=raw["dataVersion"],
    )
    assert handle_delivered_event(binding).kind == "handled"
    assert handle_delivered_event(binding).kind == "duplicate"
    assert len(receiver.received) == 1


def test_concurrent_duplicate_deliveries_send_one(receiver: Receiver) -> None:
    body = near_expiry_body(event_id="concurrent-1")
    receiver.delay = 0.3  # keep the winner busy while the others arrive

    def deliver(_: int) -> str:
        result = post_events(body)
        if result.status == 503:
            return "retry"
        return str(result.body["events"][0]["outcome"])

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(deliver, range(10)))
    assert outcomes.count("handled") == 1
    assert set(outcomes) <= {"handled", "duplicate", "retry"}
    assert post_events(body).body["events"][0]["outcome"] == "duplicate"
    assert len(receiver.received) == 1


def test_claim_race_has_one_winner(unique_name: str) -> None:
    state = get_services().state
    key = f"race-{unique_name}"

    def claim(_: int) -> str:
        try:
            return "won" if state.claim("event", key) else "duplicate"
        except RetryLater:
            return "busy"

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(claim, range(32)))
    assert results.count("won") == 1
    assert set(results) == {"won", "busy"}


def test_crashed_claim_is_taken_over_once(unique_name: str) -> None:
    state = get_services().state
    first = state.claim("event", unique_name, lease_seconds=0.01)
    assert first is not None
    import time

    time.sleep(0.05)  # the first holder "crashed": its lease lapses
    second = state.claim("event", unique_name)
    assert second is not None and second.taken_over and second.attempt == 2
    state.complete(second, outcome="done")
    assert state.claim("event", unique_name) is None


def test_outbox_keeps_notification_until_channel_recovers(receiver: Receiver) -> None:
    receiver.status = 503
    result = post_events(near_expiry_body(event_id="outbox-1"))
    assert result.status == 200
    assert result.body["events"][0]["outcome"] == "handled"
    assert receiver.received == []
    pending = get_services().outbox.pending()
    assert len(pending) == 1 and pending[0].last_error == "HTTP 503"
    (record,) = audit_records()
    assert record["outcome"] == "queued"

    import time

    time.sleep(0.1)
    report = drain_outbox()  # still failing: stays pending, backs off
    assert report.failed and not report.delivered
    receiver.status = 200
    time.sleep(0.2)
    report = drain_outbox()
    assert len(report.delivered) == 1
    assert len(receiver.received) == 1
    assert get_services().outbox.pending() == []
    time.sleep(0.1)
    assert drain_outbox().delivered == []  # delivered once, never again
    assert post_events(near_expiry_body(event_id="outbox-1")).body["events"][0]["outcome"] == (
        "duplicate"
    )
    assert len(receiver.received) == 1


def test_outbox_survives_timeouts_and_a_closed_port(receiver: Receiver, pitcrew_env: Path) -> None:
    receiver.delay = 1.5  # longer than the channel's 1 s timeout
    post_events(near_expiry_body(event_id="timeout-1"))
    (entry,) = get_services().outbox.pending()
    assert "timed out" in entry.last_error
    receiver.delay = 0
    receiver.close()  # nothing listens any more
    import time

    time.sleep(0.1)
    drain_outbox()
    (entry,) = get_services().outbox.pending()
    assert entry.attempts == 2 and "Connect" in entry.last_error
    assert receiver.url not in entry.last_error


def test_alert_fired_then_resolved(receiver: Receiver) -> None:
    payload = json.loads((SAMPLES / "common-alert-metric.json").read_text())
    fired = json.dumps(payload).encode()
    assert api.receive_alert({}, fired).status == 200
    assert api.receive_alert({}, fired).body["outcome"] == "duplicate"
    payload["data"]["essentials"]["monitorCondition"] = "Resolved"
    payload["data"]["essentials"]["resolvedDateTime"] = "2026-11-21T14:10:00Z"
    assert api.receive_alert({}, json.dumps(payload).encode()).body["outcome"] == "handled"
    assert [m["status"] for m in receiver.received] == ["firing", "resolved"]
    alert_id = payload["data"]["essentials"]["alertId"]
    assert {m["dedupKey"] for m in receiver.received} == {alert_id}
    assert receiver.received[0]["severity"] == "warning"
    # The sample's runbook is a relative path: only absolute https links reach a person.
    labels = [a["label"] for a in receiver.received[0]["actions"]]
    assert "Follow the runbook" not in labels and "Open the alert in the portal" in labels
    assert [r["action"] for r in audit_records()] == ["notify.alert", "notify.alert"]


def test_malformed_input_is_a_400_naming_the_problem(receiver: Receiver) -> None:
    result = post_events(
        b'[{"id": "x", "eventType": "Microsoft.KeyVault.SecretNearExpiry", '
        b'"eventTime": "2026-01-01T00:00:00Z", "data": {"ObjectType": "Secret"}}]'
    )
    assert result.status == 400
    assert result.body["field"] == "data.VaultName"
    assert "is required" in result.body["message"]
    bad_alert = api.receive_alert({}, b'{"schemaId": "azureMonitorCommonAlertSchema"}')
    assert bad_alert.status == 400 and bad_alert.body["field"] == "data"
    assert receiver.received == []
    assert audit_records() == []


def test_invalid_policy_refuses_to_act(pitcrew_env: Path, receiver: Receiver) -> None:
    pitcrew_env.write_text("version: 1\nchannels: {}\nroutes: []\n")
    result = post_events(near_expiry_body(event_id="refused-1"))
    assert result.status == 503
    assert result.body["error"] == "policy_invalid"
    assert any("channels" in p for p in result.body["problems"])
    assert api.health().status == 503
    assert receiver.received == []
