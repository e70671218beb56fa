"""Event intake against Azurite and a real webhook receiver: poison events on the trigger are
acknowledged and recorded (9.6), a validation event cannot hide a batch (9.7), claims are keyed
on the event's identity (9.8), the OPTIONS allow-list (9.9), nesting depth (9.5), CloudEvents
binary mode (10.11), odd characters in ids."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pitcrew.auth import encode_principal
from pitcrew.bootstrap import get_services
from pitcrew.errors import RetryLater
from pitcrew.events import BindingEvent, Event
from pitcrew.intake import api
from pitcrew.intake.api import list_rejected
from pitcrew.intake.pipeline import handle_delivered_event
from tests.conftest import SAMPLES
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("pitcrew_env")

TOPIC = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv"
VERSION = "0123456789abcdef0123456789abcdef"


def kv_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Id": f"https://sample-kv.vault.azure.net/secrets/db-password/{VERSION}",
        "VaultName": "sample-kv", "ObjectType": "Secret", "ObjectName": "db-password",
        "Version": VERSION, "NBF": None, "EXP": 1766280000,
    }
    data.update(changes)
    return data


def grid_event(event_id: str, data: Any = None, **changes: Any) -> dict[str, Any]:
    event = {
        "id": event_id, "topic": TOPIC, "subject": "db-password",
        "eventType": "Microsoft.KeyVault.SecretNearExpiry",
        "eventTime": "2026-11-21T01:08:33Z", "data": kv_data() if data is None else data,
        "dataVersion": "1",
    }
    event.update(changes)
    return event


def post(body: bytes | str, **headers: str) -> api.HttpResult:
    raw = body.encode() if isinstance(body, str) else body
    return api.receive_events("POST", {"Content-Type": "application/json", **headers}, raw)


def binding_fields(event: dict[str, Any]) -> BindingEvent:
    return BindingEvent(
        id=event.get("id"), event_type=event.get("eventType"),
        subject=event.get("subject"), topic=event.get("topic"),
        event_time=event.get("eventTime"), data=event.get("data"),
        data_version=event.get("dataVersion"),
    )


def reader_headers(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    return {"X-MS-CLIENT-PRINCIPAL": encode_principal("alice", ["Reader"])}


def audit(action: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    records = get_services().audit.query(since=now - timedelta(hours=1),
                                         until=now + timedelta(minutes=1))
    return [r.to_dict() for r in records if r.action == action]


# ------------------------------------------------------------------ 9.6 poison on the trigger

POISON = [
    pytest.param("a string", "data", id="data-a-string"),
    pytest.param({"ObjectType": "Secret", "ObjectName": "x"}, "data.VaultName", id="no-vault"),
    pytest.param(kv_data(ObjectType="Blob"), "data.ObjectType", id="object-type-blob"),
    pytest.param(kv_data(ObjectName="../../etc"), "data.ObjectName", id="path-in-name"),
]


@pytest.mark.parametrize(("data", "field"), POISON)
def test_poison_event_on_the_trigger_is_acknowledged_and_recorded(
    data: Any, field: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = grid_event(f"poison-{field}", data)
    caplog.set_level(logging.INFO)
    # Returns (no exception): the host answers 2xx and Event Grid stops retrying at once.
    outcome = handle_delivered_event(binding_fields(event), function="on_keyvault_event")
    assert outcome.kind == "rejected"
    assert field in outcome.detail
    assert receiver.received == []
    # One warning line naming the field; no traceback.
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and field in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    # The audit trail says so, with the field and the problem.
    (record,) = [r for r in audit("intake.rejected") if r["correlationId"] == event["id"]]
    assert record["outcome"] == "failed" and record["details"]["field"] == field
    assert record["target"] == TOPIC
    # And the event can be inspected.
    listed = list_rejected(reader_headers(monkeypatch), {})
    assert listed.status == 200
    (row,) = [r for r in listed.body["rejected"] if r["eventId"] == event["id"]]
    assert row["field"] == field and row["function"] == "on_keyvault_event"
    assert row["source"] == TOPIC and row["schema"] == "eventgrid"
    assert json.loads(row["envelope"])["data"] == data


def test_same_payload_on_api_events_is_a_400() -> None:
    result = post(json.dumps([grid_event("poison-http", "a string")]))
    assert result.status == 400 and result.body["field"] == "data"


def test_transient_fault_on_the_trigger_still_raises_for_a_retry(receiver: Receiver) -> None:
    event = grid_event("busy-1")
    parsed = Event("busy-1", event["eventType"], TOPIC, "", datetime.now(UTC), None, "eventgrid")
    # Another instance holds a live lease on this event: a transient condition.
    assert get_services().state.claim("event", parsed.claim_key) is not None
    with pytest.raises(RetryLater):
        handle_delivered_event(binding_fields(event))
    assert audit("intake.rejected") == []


def test_rejected_list_needs_a_reader_and_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    assert list_rejected({}, {}).status == 401
    for i in range(3):
        handle_delivered_event(binding_fields(grid_event(f"page-{i}", "nope")))
    headers = reader_headers(monkeypatch)
    first = list_rejected(headers, {"limit": "2"})
    assert first.status == 200 and len(first.body["rejected"]) == 2
    assert [r["eventId"] for r in first.body["rejected"]] == ["page-2", "page-1"]  # newest first
    rest = list_rejected(headers, {"limit": "2", "continuation": first.body["continuation"]})
    assert [r["eventId"] for r in rest.body["rejected"]] == ["page-0"]
    assert list_rejected(headers, {"continuation": "forged"}).status == 400


def test_rejected_list_is_filterable_by_time_source_type_and_function(
        monkeypatch: pytest.MonkeyPatch) -> None:
    handle_delivered_event(binding_fields(grid_event("filter-kv", "nope")),
                           function="on_keyvault_event")
    handle_delivered_event(binding_fields(grid_event("filter-sb", "nope")),
                           function="on_servicebus_deadletter")
    headers = reader_headers(monkeypatch)

    def ids(query: dict[str, str]) -> list[str]:
        answer = list_rejected(headers, query)
        assert answer.status == 200, answer.body
        return [r["eventId"] for r in answer.body["rejected"]]

    for _ in range(2):
        assert ids({"function": "on_servicebus_deadletter"}) == ["filter-sb"]
        assert ids({"function": "on_keyvault_event", "source": TOPIC}) == ["filter-kv"]
        assert ids({"source": TOPIC + "-other"}) == []
        assert ids({"source": "x' or PartitionKey ge '0", "type": "ü\u202e\x00"}) == []
        assert ids({"type": grid_event("x")["eventType"], "limit": "1"}) == ["filter-sb"]
        now = datetime.now(UTC)
        assert ids({"since": (now - timedelta(minutes=5)).isoformat(),
                    "until": (now + timedelta(minutes=5)).isoformat()}) == [
            "filter-sb", "filter-kv"]
        assert ids({"until": "2000-01-01T00:00:00Z"}) == []
        assert ids({"since": "0001-01-01", "until": "9999-12-31T23:59:59"}) == [
            "filter-sb", "filter-kv"]  # a huge range is only paged, not refused
    for bad in ({"since": "yesterday"}, {"since": "2026-02-02", "until": "2026-01-01"},
                {"source": "x" * 5000}):
        answer = list_rejected(headers, bad)
        assert answer.status == 400 and answer.body["error"] == "invalid_input", answer.body


def test_cloudevent_binding_is_claimed_by_its_source(receiver: Receiver) -> None:
    fields = BindingEvent(
        schema="cloudevents", id="ce-bind-1", event_type=
        "Microsoft.KeyVault.SecretNearExpiry", subject="db-password", source=TOPIC,
        event_time=None, data=kv_data(), data_version=None,
    )
    assert handle_delivered_event(fields).kind == "handled"
    # The same event in the Event Grid schema (topic = source) is a duplicate.
    again = handle_delivered_event(binding_fields(grid_event("ce-bind-1")))
    assert again.kind == "duplicate"
    assert len(receiver.received) == 1


# ------------------------------------------------------------------ 9.7 validation in a batch


def test_validation_event_in_a_batch_is_refused_not_answered(receiver: Receiver) -> None:
    validation = json.loads((SAMPLES / "eventgrid-subscription-validation.json").read_text())[0]
    batch = [validation, grid_event("after-validation")]
    result = post(json.dumps(batch))
    assert result.status == 400
    assert result.body["field"] == "[0].eventType"
    assert "alone" in result.body["message"] and "1 other event" in result.body["message"]
    assert receiver.received == []
    # On its own it is still the handshake.
    alone = post(json.dumps([validation]))
    assert alone.status == 200 and "validationResponse" in alone.body


# ------------------------------------------------------------------ 9.8 identity


def test_same_id_from_another_source_is_another_event(receiver: Receiver) -> None:
    victim = grid_event("shared-id")
    squatter = grid_event("shared-id", topic="/subscriptions/0/resourceGroups/x/providers/"
                          "Microsoft.EventGrid/topics/attacker")
    assert post(json.dumps([squatter])).body["events"][0]["outcome"] == "handled"
    assert post(json.dumps([victim])).body["events"][0]["outcome"] == "handled"
    assert post(json.dumps([victim])).body["events"][0]["outcome"] == "duplicate"
    # (The notification itself is deduplicated by notify's id, `expiry:<event id>`: see report.)
    # The claim row keeps the readable id and source beside the digest key.
    rows = list(get_services().state._claims.query_entities("EventId eq 'shared-id'"))
    assert sorted(r["Source"] for r in rows) == sorted([squatter["topic"], TOPIC])


@pytest.mark.parametrize(
    "event_id", ["ünïcødé-ид-事件", "tab\tnew\nline\x00nul\x7f", "/\\#?%", "😀" * 300]
)
def test_any_characters_in_an_id_are_handled_not_500(event_id: str, receiver: Receiver) -> None:
    body = json.dumps([grid_event(event_id)])
    first = post(body)
    assert first.status == 200, first.body
    assert first.body["events"][0]["outcome"] == "handled"
    assert post(body).body["events"][0]["outcome"] == "duplicate"
    assert len(receiver.received) == 1


def test_unpaired_surrogate_id_is_a_400() -> None:
    result = post('[{"id": "\\ud800", "eventType": "X", "eventTime": "2026-01-01T00:00:00Z"}]')
    assert result.status == 400 and result.body["field"] == "[0].id"


# ------------------------------------------------------------------ 9.5 nesting depth


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000])
def test_deep_nesting_is_a_400_on_every_body_route(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitcrew.rotation.api import request_rotation

    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    rotator = {"X-MS-CLIENT-PRINCIPAL": encode_principal("rita", ["Rotator"])}
    for result in (
        post(body),
        post(body, **{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"}),
        api.receive_alert({}, body),
        request_rotation(rotator, body),
    ):
        assert result.status == 400, result.body
        assert "deeper than 64" in result.body["message"]


# ------------------------------------------------------------------ 9.9 OPTIONS


def test_options_handshake_grants_only_allowed_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    def options(origin: str) -> api.HttpResult:
        return api.receive_events("OPTIONS", {"WebHook-Request-Origin": origin}, b"")

    granted = options("eventgrid.azure.net")
    assert granted.status == 200
    assert granted.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert granted.headers["WebHook-Allowed-Rate"] == "120"
    refused = options("evil.example")
    assert refused.status == 400
    assert refused.body["field"] == "WebHook-Request-Origin"
    assert "eventgrid.azure.net" in refused.body["message"]
    monkeypatch.setenv("PITCREW_WEBHOOK_ALLOWED_ORIGINS", "emitter.example.com")
    monkeypatch.setenv("PITCREW_WEBHOOK_ALLOWED_RATE", "10")
    assert options("eventgrid.azure.net").status == 400
    custom = options("emitter.example.com")
    assert custom.status == 200 and custom.headers["WebHook-Allowed-Rate"] == "10"


# ------------------------------------------------------------------ 10.11 binary mode


def test_binary_mode_cloudevent_is_handled(receiver: Receiver) -> None:
    headers = {
        "ce-specversion": "1.0", "ce-id": "binary-1", "ce-source": TOPIC,
        "ce-type": "Microsoft.KeyVault.SecretNearExpiry", "ce-subject": "db-password",
    }
    result = post(json.dumps(kv_data()), **headers)
    assert result.status == 200, result.body
    assert result.body["events"][0]["outcome"] == "handled"
    assert len(receiver.received) == 1
    assert "db-password" in receiver.received[0]["title"]
    unsupported = post(b"\x00\x01", **headers, **{"Content-Type": "application/octet-stream"})
    assert unsupported.status == 400 and "not supported" in unsupported.body["message"]


@pytest.mark.parametrize("event_id", [None, "\ud800", "bad\nline\x00"])
def test_odd_ids_on_the_trigger_never_raise_for_bad_input(
    event_id: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = grid_event("placeholder", "a string")
    event["id"] = event_id
    outcome = handle_delivered_event(binding_fields(event))
    assert outcome.kind == "rejected"
    listed = list_rejected(reader_headers(monkeypatch), {}).body["rejected"]
    assert len(listed) == 1 and listed[0]["field"] in ("event.id", "data")


# ------------------------------------------------------------------ a new version resolves


def test_a_new_version_resolves_the_expiry_alert_once(receiver: Receiver) -> None:
    """An expiry alert no longer repeats for ever: the object's NewVersionCreated event tells
    the receivers that were told it fired that it is resolved, once, and audits it."""
    assert post(json.dumps([grid_event("near-1")])).status == 200
    assert [b["status"] for b in receiver.received] == ["firing"]
    new_version = kv_data(Version="fedcba9876543210fedcba9876543210",
                          Id="https://sample-kv.vault.azure.net/secrets/db-password/fedcba98")
    created = grid_event("new-1", data=new_version,
                         eventType="Microsoft.KeyVault.SecretNewVersionCreated")
    result = post(json.dumps([created]))
    assert result.status == 200
    assert result.body["events"][0]["detail"].startswith("expiry alert resolved")  # type: ignore[index]
    assert [b["status"] for b in receiver.received] == ["firing", "resolved"]
    assert receiver.received[1]["dedupKey"] == receiver.received[0]["dedupKey"]
    assert len(audit("notify.expiry.resolved")) == 1
    # Another new version (or the same event under another id): nothing left to resolve.
    again = post(json.dumps([grid_event("new-2", data=new_version,
                                        eventType="Microsoft.KeyVault.SecretNewVersionCreated")]))
    assert again.body["events"][0]["detail"] == "no expiry alert to resolve"  # type: ignore[index]
    assert len(receiver.received) == 2


def test_a_new_version_of_an_object_nobody_was_alerted_about_sends_nothing(
    receiver: Receiver,
) -> None:
    created = grid_event("new-only", eventType="Microsoft.KeyVault.SecretNewVersionCreated")
    result = post(json.dumps([created]))
    assert result.body["events"][0]["detail"] == "no expiry alert to resolve"  # type: ignore[index]
    assert receiver.received == []
    assert audit("notify.expiry.resolved") == []
