"""Event intake: every sample parses; malformed input gets one error type naming the field."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitcrew.errors import InvalidInput
from pitcrew.events import (
    MAX_BODY_BYTES,
    AlertEvent,
    Event,
    SubscriptionValidation,
    abuse_protection_headers,
    keyvault_event,
    parse_alert,
    parse_delivery,
    validation_response,
)
from tests.conftest import SAMPLES

EXPIRES = datetime(2025, 12, 21, 1, 20, tzinfo=UTC)


def near_expiry_with(data: object) -> Event:
    """A SecretNearExpiry delivery carrying `data`, parsed to its envelope."""
    raw = [
        {
            "id": "1",
            "eventType": "Microsoft.KeyVault.SecretNearExpiry",
            "eventTime": "2026-01-01T00:00:00Z",
            "subject": "x",
            "data": data,
        }
    ]
    (event,) = parse_delivery(json.dumps(raw))
    assert isinstance(event, Event)
    return event


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_every_sample_parses() -> None:
    files = sorted(p for p in SAMPLES.glob("*.json"))
    assert len(files) >= 7
    for path in files:
        body = path.read_bytes()
        payload = json.loads(body)
        if isinstance(payload, dict) and payload.get("schemaId"):
            assert isinstance(parse_alert(body), AlertEvent), path.name
        else:
            items = parse_delivery(body)
            assert items, path.name
            for item in items:
                if isinstance(item, Event) and item.type.startswith("Microsoft.KeyVault."):
                    keyvault_event(item)


@pytest.mark.parametrize(
    "name",
    ["keyvault-secret-near-expiry.eventgrid.json", "keyvault-secret-near-expiry.cloudevent.json"],
)
def test_keyvault_quirks_are_tolerated(name: str) -> None:
    content_type = "application/cloudevents+json" if "cloudevent" in name else "application/json"
    (event,) = parse_delivery(sample(name), content_type)
    assert isinstance(event, Event)
    kv = keyvault_event(event)
    assert kv.vault_name == "sample-kv"
    assert kv.object_name == "cosmos-primary-key"  # key had a trailing space
    assert kv.version == "ee059b2bb5bc48398a53b168c6cdcb10"  # value had a leading space
    assert kv.object_type == "Secret"
    assert kv.condition == "NearExpiry"
    assert kv.expires == datetime.fromtimestamp(1766280000, UTC)  # string in one, number in other
    assert kv.not_before == datetime.fromtimestamp(1761000000, UTC)
    assert kv.target == "sample-kv/secrets/cosmos-primary-key"


def test_cloudevents_batch_and_shape_detection() -> None:
    single = json.loads(sample("keyvault-secret-near-expiry.cloudevent.json"))
    second = dict(single, id="another")
    batch = json.dumps([single, second]).encode()
    by_type = parse_delivery(batch, "application/cloudevents-batch+json")
    by_shape = parse_delivery(batch, "application/json")
    assert [e.id for e in by_type] == [e.id for e in by_shape] == [single["id"], "another"]


def test_validation_handshake() -> None:
    items = parse_delivery(sample("eventgrid-subscription-validation.json"))
    assert isinstance(items[0], SubscriptionValidation)
    assert validation_response(items) == {
        "validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    }


def test_abuse_protection_handshake() -> None:
    headers = abuse_protection_headers({"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert headers["WebHook-Allowed-Rate"] == "120"  # a stated rate, never "*"
    with pytest.raises(InvalidInput, match="WebHook-Request-Origin"):
        abuse_protection_headers({})


def test_alerts_fired_and_resolved() -> None:
    fired = parse_alert(sample("common-alert-metric.json"))
    assert fired.condition == "Fired" and fired.rule == "sb-deadletter-depth"
    payload = json.loads(sample("common-alert-metric.json"))
    payload["data"]["essentials"]["monitorCondition"] = "Resolved"
    payload["data"]["essentials"]["resolvedDateTime"] = "2026-11-21T14:30:00Z"
    resolved = parse_alert(json.dumps(payload))
    assert resolved.dedup_key == fired.dedup_key
    assert resolved.id != fired.id
    del payload["data"]["essentials"]["resolvedDateTime"]
    with pytest.raises(InvalidInput, match=r"data\.essentials\.resolvedDateTime: is required"):
        parse_alert(json.dumps(payload))


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (b"", "body", "empty"),
        (b"{not json", "body", "not valid JSON"),
        (b"\xff\xfe", "body", "not"),
        (b"42", "body", "array"),
        (b"[]", "body", "empty array"),
        (b"[42]", "[0]", "JSON object"),
        (b'[{"eventType": "X", "eventTime": "2026-01-01T00:00:00Z"}]', "[0].id", "required"),
        (b'[{"id": "1", "eventType": "X", "eventTime": "yesterday"}]', "[0].eventTime", "ISO 8601"),
        (b'[{"id": 1, "eventType": "X", "eventTime": "2026-01-01T00:00:00Z"}]', "[0].id", "string"),
        (b'{"specversion": "0.3", "id": "1"}', "event.specversion", "1.0"),
        (b'{"specversion": "1.0", "id": "1", "type": "t"}', "event.source", "required"),
    ],
)
def test_malformed_deliveries_name_the_problem(body: bytes, field: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_delivery(body)
    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_oversize_body_is_refused() -> None:
    body = b"[" + b" " * MAX_BODY_BYTES + b"]"
    with pytest.raises(InvalidInput, match="limit is 1048576"):
        parse_delivery(body)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"ObjectType": "Secret", "ObjectName": "x"}, "data.VaultName"),
        ({"VaultName": "kv1", "ObjectType": "Blob", "ObjectName": "x"}, "data.ObjectType"),
        (
            {"VaultName": "kv1", "ObjectType": "Secret", "ObjectName": "x", "EXP": "soon"},
            "data.EXP",
        ),
        ({"VaultName": "kv1", "ObjectType": "Secret", "ObjectName": "x", "NBF": True}, "data.NBF"),
        ("not an object", "data"),
    ],
)
def test_malformed_keyvault_data(data: object, field: str) -> None:
    event = near_expiry_with(data)
    with pytest.raises(InvalidInput) as caught:
        keyvault_event(event)
    assert caught.value.field == field


def test_common_alert_schema_required() -> None:
    with pytest.raises(InvalidInput, match="schemaId"):
        parse_alert(b'{"schemaId": "AzureMonitorMetricAlert", "data": {}}')
    with pytest.raises(InvalidInput, match=r"data\.essentials: must be a JSON object"):
        parse_alert(b'{"schemaId": "azureMonitorCommonAlertSchema", "data": {}}')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_either_parses_or_raises_invalid_input(value: object) -> None:
    body = json.dumps(value)
    for parse in (parse_delivery, parse_alert):
        try:
            result = parse(body)
        except InvalidInput as exc:
            assert str(exc).startswith(exc.field)
        else:
            assert result is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_either_parse_or_raise_invalid_input(body: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        parse_delivery(body)


keyvault_data = st.fixed_dictionaries(
    {
        " VaultName": st.sampled_from(["kv-one", " kv-one ", "KV-ONE"]),
        "objecttype ": st.sampled_from(["Secret", "secret", " Key", "Certificate "]),
        "OBJECTNAME": st.from_regex(r"[0-9A-Za-z-]{1,127}", fullmatch=True).map(
            lambda name: f" {name} "
        ),
        "NBF": st.one_of(st.none(), st.integers(0, 4_000_000_000), st.integers(0, 10**9).map(str)),
        "EXP": st.one_of(st.none(), st.integers(0, 4_000_000_000), st.integers(0, 10**9).map(str)),
    }
)


@settings(max_examples=200, deadline=None)
@given(keyvault_data)
def test_keyvault_data_is_tolerant(data: dict[str, object]) -> None:
    event = near_expiry_with(data)
    kv = keyvault_event(event)
    assert kv.vault_name.strip() == kv.vault_name
    assert kv.object_type in ("Secret", "Key", "Certificate")


def test_repo_copy_of_samples_matches_shared() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "samples"
    copy = Path(__file__).resolve().parents[2] / "examples" / "samples"
    if not shared.is_dir():
        pytest.skip("../shared/samples is not beside this clone")
    for path in shared.glob("*.json"):
        assert (copy / path.name).read_bytes() == path.read_bytes(), path.name
