"""Issue 9.2: an odd id never loses a notification, one bad outbox row never holds up the
others, every failure in a delivery is a recorded attempt, and the audit says what happened.

Against Azurite and a real webhook receiver on loopback."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pitcrew.azure.tables.keys import table_key
from pitcrew.bootstrap import get_services
from pitcrew.intake import api
from pitcrew.intake.api import drain_outbox
from pitcrew.notify.model import Notification
from tests.conftest import SAMPLES
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("pitcrew_env")


def near_expiry(event_id: str) -> bytes:
    events = json.loads((SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_text())
    events[0]["id"] = event_id
    return json.dumps(events).encode()


def post(body: bytes) -> api.HttpResult:
    return api.receive_events("POST", {"Content-Type": "application/json"}, body)


def audit_records() -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    records = get_services().audit.query(
        since=now - timedelta(hours=1), until=now + timedelta(minutes=1)
    )
    return [r.to_dict() for r in records]


def write_policy(policy: Path, receiver: Receiver, extra_channels: str = "",
                 routes: str = "routes:\n  - name: all\n    channels: [hook]\n") -> None:
    policy.write_text(
        "version: 1\n"
        "channels:\n"
        "  hook:\n"
        "    type: webhook\n"
        f"    url: {receiver.url}\n"
        "    timeout_seconds: 1\n"
        f"{extra_channels}"
        f"{routes}"
        "outbox:\n"
        "  base_delay_seconds: 0.01\n"
        "  max_delay_seconds: 0.05\n"
        "  escalate_after_attempts: 3\n"
    )
    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import reset_runtime

    reset_runtime()
    reset_services()


@pytest.mark.parametrize(
    "event_id",
    ["\u202eevil", "key-\N{KEY}-\N{FIRE}", "nul\x00byte", "line\r\nX-Injected: 1", "caf\u00e9"],
    ids=["bidi-override", "emoji", "nul", "crlf", "latin1"],
)
def test_any_event_id_is_delivered_with_a_header_safe_key(
    receiver: Receiver, event_id: str
) -> None:
    result = post(near_expiry(event_id))
    assert result.status == 200, result.body
    assert result.body["events"][0]["outcome"] == "handled"
    (message,) = receiver.received
    assert message["id"].startswith(f"expiry:{event_id}|")
    key = receiver.headers[0]["Idempotency-Key"]
    assert key == hashlib.sha256(message["id"].encode()).hexdigest()
    assert "X-Injected" not in receiver.headers[0]
    (record,) = audit_records()
    assert record["outcome"] == "delivered"
    assert get_services().outbox.pending() == []


def test_a_failing_channel_is_a_recorded_attempt_and_blocks_nobody(
    receiver: Receiver, pitcrew_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A header setting httpx cannot encode raises UnicodeEncodeError, not an httpx error.
    monkeypatch.setenv("PITCREW_TEST_BAD_HEADERS", json.dumps({"X-Token": "s\u00e9cret-value"}))
    write_policy(
        pitcrew_env, receiver,
        extra_channels=(
            "  broken:\n"
            "    type: webhook\n"
            f"    url: {receiver.url}\n"
            "    headers_setting: PITCREW_TEST_BAD_HEADERS\n"
        ),
        routes="routes:\n  - name: all\n    channels: [broken, hook]\n",
    )
    receiver.status = 503
    first = post(near_expiry("blocking-1"))
    assert first.status == 200, first.body
    (record,) = audit_records()
    assert record["outcome"] == "queued"
    assert record["details"]["queued"] == ["broken", "hook"]
    by_channel = {e.channel: e for e in get_services().outbox.pending()}
    assert by_channel["broken"].attempts == 1
    assert by_channel["broken"].last_error.startswith("UnicodeEncodeError")
    assert "s\u00e9cret" not in by_channel["broken"].last_error

    receiver.status = 200
    time.sleep(0.1)
    report = drain_outbox()  # the broken row fails again; the good one is delivered
    assert len(report.delivered) == 1 and len(report.failed) == 1
    assert len(receiver.received) == 1
    (stuck,) = get_services().outbox.pending()
    assert stuck.channel == "broken" and stuck.attempts == 2
    time.sleep(0.1)
    drain_outbox()  # third failure: escalated like any other failing delivery
    stuck_records = [r for r in audit_records() if r["action"] == "notify.stuck"]
    assert len(stuck_records) == 1
    assert "s\u00e9cret" not in json.dumps(audit_records())


def test_an_unreadable_row_does_not_hold_up_due_ones(receiver: Receiver) -> None:
    services = get_services()
    receiver.status = 503
    post(near_expiry("good-1"))
    now = datetime.now(UTC)
    services.runtime.table("outbox").create_entity({  # type: ignore[union-attr]
        "PartitionKey": table_key("hook"),
        "RowKey": table_key("garbage"),
        "Channel": "hook",
        "Payload": "{not json",
        "Status": "pending",
        "Attempts": 0,
        "NextAttemptAt": now - timedelta(seconds=1),
        "LeaseUntil": now - timedelta(seconds=1),
        "CreatedAt": now,
        "LastError": "",
    })
    receiver.status = 200
    time.sleep(0.1)
    report = drain_outbox()
    assert len(report.delivered) == 1 and report.failed == ["garbage"]
    assert [m["id"].split("|")[0] for m in receiver.received] == ["expiry:good-1"]
    row = services.runtime.table("outbox").get_entity(  # type: ignore[union-attr]
        table_key("hook"), table_key("garbage")
    )
    assert row["Attempts"] == 1 and "unreadable" in row["LastError"]
    assert row["NextAttemptAt"] > now


def test_a_row_left_by_an_interrupted_run_is_delivered_by_the_retry(receiver: Receiver) -> None:
    """The first run recorded the outbox row and died before its attempt. Its handler retry
    must not report the notification as done: it queues while the row is leased, and delivers
    once the lease has lapsed."""
    services = get_services()
    body = near_expiry("interrupted-1")
    notification = _notification_for("interrupted-1")
    services.outbox.enqueue("hook", notification)  # leased for lease_seconds (120 s)

    first = post(body)
    assert first.status == 200
    assert receiver.received == []
    (record,) = audit_records()
    assert record["outcome"] == "queued"
    assert record["details"]["queued"] == ["hook"]


def test_a_pending_row_whose_lease_lapsed_is_delivered_now(
    receiver: Receiver, pitcrew_env: Path
) -> None:
    text = pitcrew_env.read_text() + "  lease_seconds: 0.01\n"
    pitcrew_env.write_text(text)
    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import reset_runtime

    reset_runtime()
    reset_services()
    services = get_services()
    services.outbox.enqueue("hook", _notification_for("lapsed-1"))
    time.sleep(0.05)
    assert post(near_expiry("lapsed-1")).status == 200
    assert [m["id"].split("|")[0] for m in receiver.received] == ["expiry:lapsed-1"]
    (record,) = audit_records()
    assert record["outcome"] == "delivered"


def test_delivered_before_is_said_so(receiver: Receiver) -> None:
    services = get_services()
    notification = _notification_for("before-1")
    entry = services.outbox.enqueue("hook", notification)
    assert services.outbox.attempt(entry, services.channels["hook"], leased=True) == "delivered"
    assert post(near_expiry("before-1")).status == 200
    assert len(receiver.received) == 1
    (record,) = audit_records()
    assert record["outcome"] == "already-delivered"
    assert record["details"]["already"] == ["hook"]


def test_a_flat_policy_without_a_catch_all_is_refused_so_nothing_is_unrouted(
    receiver: Receiver, pitcrew_env: Path
) -> None:
    """Issue 12: no notification can reach nobody. A flat `routes:` list with no route without
    `match` used to let an expiry fall through ("no-channel"); now the policy is invalid."""
    write_policy(
        pitcrew_env, receiver,
        routes="routes:\n  - name: alerts-only\n    match: {kinds: [alert]}\n"
               "    channels: [hook]\n",
    )
    result = post(near_expiry("unrouted-1"))
    assert result.status == 503
    assert result.body["error"] == "policy_invalid"
    assert any("no route takes every notification" in p for p in result.body["problems"])
    assert receiver.received == []


def _notification_for(event_id: str) -> Notification:
    from pitcrew.events import keyvault_event, parse_delivery
    from pitcrew.intake.handlers import expiry_notification

    (event,) = parse_delivery(near_expiry(event_id), "application/json")
    return expiry_notification(keyvault_event(event), get_services().policy)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["Bearer sekrit-token\r\nX-Evil: 1", "Bearer sekrit-token\x00"])
def test_a_bad_header_value_never_reaches_the_outbox_log_or_audit(
    receiver: Receiver, pitcrew_env: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, value: str,
) -> None:
    monkeypatch.setenv("PITCREW_TEST_BAD_HEADERS", json.dumps({"Authorization": value}))
    write_policy(
        pitcrew_env, receiver,
        extra_channels=(
            "  broken:\n"
            "    type: webhook\n"
            f"    url: {receiver.url}\n"
            "    headers_setting: PITCREW_TEST_BAD_HEADERS\n"
        ),
        routes="routes:\n  - name: all\n    channels: [broken]\n",
    )
    # INFO: what the app emits (host.json); httpcore's own DEBUG trace quotes the request.
    with caplog.at_level(logging.INFO):
        assert post(near_expiry("header-1")).status == 200
        for _ in range(3):
            time.sleep(0.1)
            drain_outbox()
    (entry,) = get_services().outbox.pending()
    assert entry.attempts == 4 and "not valid" in entry.last_error
    assert "sekrit" not in entry.last_error
    assert "sekrit" not in caplog.text
    assert "sekrit" not in json.dumps(audit_records())
    assert [r["action"] for r in audit_records()] == ["notify.expiry", "notify.stuck"]


def test_the_same_id_from_another_topic_still_notifies(receiver: Receiver) -> None:
    # An events-key holder posts an event with the id a vault's event will carry, from its own
    # topic: the vault's real event is another event and its notification still goes out.
    forged = json.loads(near_expiry("shared-id-1"))
    forged[0]["topic"] = "/subscriptions/0/resourceGroups/x/providers/Microsoft.EventGrid/topics/t"
    assert post(json.dumps(forged).encode()).status == 200
    assert post(near_expiry("shared-id-1")).status == 200
    assert len(receiver.received) == 2
    assert len({m["id"] for m in receiver.received}) == 2
