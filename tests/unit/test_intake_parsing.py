"""Event intake hardening (issue 9 items 5, 7-9; issue 10 items 6 and 11): nesting depth,
identity per schema, Key Vault names, the OPTIONS allow-list, CloudEvents binary mode, and
arbitrary input that must end in an Event or InvalidInput, never another exception."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitcrew.azure.tables.keys import table_key
from pitcrew.errors import InvalidInput
from pitcrew.events import (
    MAX_ENVELOPE_TEXT,
    MAX_JSON_DEPTH,
    BindingEvent,
    Event,
    SubscriptionValidation,
    WebhookPolicy,
    abuse_protection_headers,
    event_from_binding,
    json_depth,
    keyvault_event,
    load_json,
    parse_alert,
    parse_delivery,
    parse_request,
)
from tests.conftest import SAMPLES

KV_TYPE = "Microsoft.KeyVault.SecretNearExpiry"
VERSION = "0123456789abcdef0123456789abcdef"


def kv_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Id": f"https://sample-kv.vault.azure.net/secrets/db-password/{VERSION}",
        "VaultName": "sample-kv",
        "ObjectType": "Secret",
        "ObjectName": "db-password",
        "Version": VERSION,
        "NBF": None,
        "EXP": 1766280000,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def grid_event(data: Any, **changes: Any) -> dict[str, Any]:
    event = {
        "id": "e-1",
        "topic": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv",
        "subject": "db-password",
        "eventType": KV_TYPE,
        "eventTime": "2026-11-21T01:08:33Z",
        "data": data,
        "dataVersion": "1",
    }
    event.update(changes)
    return event


def parsed(data: Any) -> Event:
    (event,) = parse_delivery(json.dumps([grid_event(data)]))
    assert isinstance(event, Event)
    return event


# ------------------------------------------------------------------ 9.5 nesting depth


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_is_invalid_input_not_recursion_error(opener: bytes) -> None:
    body = opener * 100_000
    for parse in (load_json, parse_delivery, parse_alert):
        with pytest.raises(InvalidInput) as caught:
            parse(body)  # type: ignore[operator]
        assert caught.value.field == "body"
        assert f"deeper than {MAX_JSON_DEPTH}" in caught.value.problem


def test_nesting_at_the_limit_parses_and_brackets_in_strings_do_not_count() -> None:
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert load_json(at_limit) is not None
    with pytest.raises(InvalidInput, match="deeper than"):
        load_json("[" + at_limit + "]")
    in_strings = json.dumps({"a": "[" * 10_000, "b": '\\"{{{{' * 100, "c": ["]]]"]})
    assert json_depth(in_strings.encode()) == 2
    assert load_json(in_strings)["c"] == ["]]]"]


@pytest.mark.parametrize("body", [
    b'{"dry_run": ' + b"1" * 5000 + b"}",  # past int()'s 4,300 digits: a ValueError, not JSON's
    b'{"rate": NaN}',
    b"[Infinity]",
    b'{"a": -Infinity}',
])
def test_numbers_json_does_not_have_are_invalid_input(body: bytes) -> None:
    for parse in (load_json, parse_delivery, parse_alert):
        with pytest.raises(InvalidInput) as caught:
            parse(body)  # type: ignore[operator]
        assert caught.value.field == "body" and "not valid JSON" in caught.value.problem


def test_every_sample_is_well_under_the_depth_limit() -> None:
    for path in SAMPLES.glob("*.json"):
        assert json_depth(path.read_bytes()) < 10, path.name


# ------------------------------------------------------------------ 9.8 identity per schema


def test_claim_key_is_source_plus_id() -> None:
    first = parsed(kv_data())
    (same_id_other_topic,) = parse_delivery(json.dumps([grid_event(kv_data(), topic="/evil")]))
    assert isinstance(same_id_other_topic, Event)
    assert first.id == same_id_other_topic.id
    assert first.claim_key != same_id_other_topic.claim_key
    assert len(first.claim_key) == 64 and table_key(first.claim_key) == first.claim_key
    # The same event in the other schema (source = topic) is the same event.
    cloud = {
        "specversion": "1.0", "id": "e-1", "source": first.source, "type": KV_TYPE,
        "data": kv_data(),
    }
    (as_cloud,) = parse_delivery(json.dumps(cloud), "application/cloudevents+json")
    assert isinstance(as_cloud, Event) and as_cloud.schema == "cloudevents"
    assert as_cloud.claim_key == first.claim_key
    # Separator games cannot make two identities collide.
    a = Event("b c", "t", "a", "", datetime.now(UTC), None, "eventgrid")
    b = Event("c", "t", "a b", "", datetime.now(UTC), None, "eventgrid")
    assert a.claim_key != b.claim_key


def test_binding_keeps_the_cloudevents_schema_and_source() -> None:
    event = event_from_binding(BindingEvent(
        schema="cloudevents", id="c-1", event_type=KV_TYPE, subject="db-password",
        source="/vaults/sample-kv", event_time=None, data=kv_data(), data_version=None,
    ))
    assert event.schema == "cloudevents"
    assert event.source == "/vaults/sample-kv"
    with pytest.raises(InvalidInput) as caught:
        event_from_binding(BindingEvent(schema="cloudevents", id="c-2", event_type=KV_TYPE,
                                        subject=None, source=None, event_time=None, data={}))
    assert caught.value.field == "event.source"
    grid = event_from_binding(BindingEvent(id="g-1", event_type=KV_TYPE, subject="s", topic="/t",
                                           event_time=datetime(2026, 1, 1, tzinfo=UTC),
                                           data=kv_data()))
    assert grid.schema == "eventgrid" and grid.source == "/t"


# ------------------------------------------------------------------ 10.6 Key Vault names


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ObjectName": "../../etc"}, "data.ObjectName"),
        ({"ObjectName": "a" * 128}, "data.ObjectName"),
        ({"ObjectName": "name with space"}, "data.ObjectName"),
        ({"ObjectName": "nämé"}, "data.ObjectName"),
        ({"ObjectName": "x; rm -rf /"}, "data.ObjectName"),
        ({"VaultName": "kv"}, "data.VaultName"),
        ({"VaultName": "a" * 25}, "data.VaultName"),
        ({"VaultName": "1vault"}, "data.VaultName"),
        ({"VaultName": "my--vault"}, "data.VaultName"),
        ({"VaultName": "vault-"}, "data.VaultName"),
        ({"VaultName": "../kv"}, "data.VaultName"),
        ({"Version": "../x"}, "data.Version"),
        ({"Version": "0123"}, "data.Version"),
        ({"Version": VERSION + "0"}, "data.Version"),
    ],
)
def test_keyvault_naming_rules_are_enforced(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        keyvault_event(parsed(kv_data(**changes)))
    assert caught.value.field == field


@pytest.mark.parametrize(
    "changes",
    [
        {"ObjectName": "a" * 127},
        {"ObjectName": "9-Z"},
        {"VaultName": "abc"},
        {"VaultName": "a" * 24},
        {"VaultName": "Kv-1-x9"},
        {"Version": ...},  # absent: taken from the Id
        {"Version": ..., "Id": "https://sample-kv.vault.azure.net/secrets/db-password"},
        {"Version": VERSION.upper()},
    ],
)
def test_valid_keyvault_names_pass(changes: dict[str, Any]) -> None:
    kv = keyvault_event(parsed(kv_data(**changes)))
    assert kv.version in (VERSION, VERSION.upper(), "")


@pytest.mark.parametrize("changes", [
    {"Version": VERSION.upper()},
    {"Version": VERSION.upper(), "Id": "https://sample-kv.vault.azure.net/secrets/db-password/"
     + VERSION.upper()},
    {"Version": ..., "Id": f"https://sample-kv.vault.azure.net/secrets/db-password/"
     f"{VERSION[:16].upper()}{VERSION[16:]}"},
])
def test_a_version_in_upper_case_is_the_version_key_vault_names(changes: dict[str, Any]) -> None:
    """Key Vault names versions in lower-case hex, and every comparison with what it answers
    is exact: an event's version is taken in lower case, however it was sent."""
    assert keyvault_event(parsed(kv_data(**changes))).version == VERSION


def test_vault_level_events_are_not_object_events() -> None:
    from pitcrew.events import is_keyvault_event

    policy_changed = parsed({"VaultName": "sample-kv", "ObjectType": "Vault"})
    object.__setattr__(policy_changed, "type", "Microsoft.KeyVault.VaultAccessPolicyChanged")
    assert not is_keyvault_event(policy_changed)
    for kind in ("SecretNearExpiry", "KeyExpired", "CertificateNewVersionCreated"):
        object.__setattr__(policy_changed, "type", f"Microsoft.KeyVault.{kind}")
        assert is_keyvault_event(policy_changed)


# ------------------------------------------------------------------ 9.9 OPTIONS allow-list


def test_only_allowed_origins_get_the_handshake() -> None:
    with pytest.raises(InvalidInput) as caught:
        abuse_protection_headers({"WebHook-Request-Origin": "attacker.example"})
    assert caught.value.field == "WebHook-Request-Origin"
    assert "eventgrid.azure.net" in caught.value.problem
    assert "PITCREW_WEBHOOK_ALLOWED_ORIGINS" in caught.value.problem
    granted = abuse_protection_headers({"webhook-request-origin": "EventGrid.Azure.NET"})
    assert granted["WebHook-Allowed-Rate"] == "120"


def test_webhook_policy_from_settings() -> None:
    policy = WebhookPolicy.from_env({
        "PITCREW_WEBHOOK_ALLOWED_ORIGINS": " eventgrid.azure.net, Emitter.Example.com ,",
        "PITCREW_WEBHOOK_ALLOWED_RATE": "30",
    })
    assert policy.origins == ("eventgrid.azure.net", "emitter.example.com")
    headers = abuse_protection_headers({"WebHook-Request-Origin": "emitter.example.com"}, policy)
    assert headers == {"WebHook-Allowed-Origin": "emitter.example.com",
                       "WebHook-Allowed-Rate": "30", "Allow": "POST, OPTIONS"}
    assert WebhookPolicy.from_env({}) == WebhookPolicy()
    for bad in ({"PITCREW_WEBHOOK_ALLOWED_RATE": "*"}, {"PITCREW_WEBHOOK_ALLOWED_RATE": "0"},
                {"PITCREW_WEBHOOK_ALLOWED_ORIGINS": "*"}):
        with pytest.raises(ValueError, match="PITCREW_WEBHOOK_ALLOWED_"):
            WebhookPolicy.from_env(bad)


# ------------------------------------------------------------------ 10.11 binary mode


def binary_headers(**extra: str) -> dict[str, str]:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-source": "/subscriptions/0/providers/Microsoft.KeyVault/vaults/sample-kv",
        "ce-type": KV_TYPE,
        "ce-subject": "db-password",
        "ce-time": "2026-11-21T01:08:33Z",
        "Content-Type": "application/json",
    }
    headers.update(extra)
    return headers


def test_binary_mode_cloudevent_is_parsed() -> None:
    (event,) = parse_request(json.dumps(kv_data()).encode(), binary_headers())
    assert isinstance(event, Event)
    assert (event.id, event.schema, event.type) == ("bin-1", "cloudevents", KV_TYPE)
    assert event.source.endswith("/vaults/sample-kv")
    assert keyvault_event(event).object_name == "db-password"
    (text,) = parse_request(b"hello", binary_headers(**{"Content-Type": "text/plain"}))
    assert isinstance(text, Event) and text.data == "hello"
    (encoded,) = parse_request(b"{}", binary_headers(**{"ce-subject": "a%20b%25"}))
    assert isinstance(encoded, Event) and encoded.subject == "a b%"


@pytest.mark.parametrize(
    ("headers", "body", "field", "fragment"),
    [
        ({"ce-id": ""}, b"{}", "ce-id", "required"),
        ({"ce-specversion": "0.3"}, b"{}", "ce-specversion", "1.0"),
        ({"ce-time": "yesterday"}, b"{}", "ce-time", "ISO 8601"),
        ({"Content-Type": "application/octet-stream"}, b"\x00\x01", "content-type",
         "not supported"),
        ({}, b"{oops", "body", "not valid JSON"),
        ({}, b"[" * 1000, "body", "deeper than"),
        ({"ce-id": "%ff"}, b"{}", "ce-id", "percent-encoded"),
    ],
)
def test_binary_mode_errors_name_the_header(
    headers: dict[str, str], body: bytes, field: str, fragment: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request(body, binary_headers(**headers))
    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_structured_content_type_wins_over_ce_headers() -> None:
    body = (SAMPLES / "keyvault-secret-near-expiry.cloudevent.json").read_bytes()
    headers = binary_headers(**{"Content-Type": "application/cloudevents+json"})
    (event,) = parse_request(body, headers)
    assert isinstance(event, Event) and event.id == "5a8a2c1e-7a55-4d7b-9c1e-2b2f0f3f6b11"


# ------------------------------------------------------------------ odd text in ids


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb"])
def test_unpaired_surrogates_in_ids_are_invalid_input(value: str) -> None:
    body = json.dumps([grid_event(kv_data(), id=value)])  # JSON escapes them: \\ud800
    with pytest.raises(InvalidInput) as caught:
        parse_delivery(body)
    assert caught.value.field == "[0].id"


@pytest.mark.parametrize("field", ["id", "topic", "subject", "eventType"])
def test_envelope_text_longer_than_the_limit_is_invalid_input_naming_it(field: str) -> None:
    # A 100,000-character id parsed, was claimed and notified, then broke the audit row's
    # 32K-character property: a 500 that Event Grid retries for a day.
    body = json.dumps([grid_event(kv_data(), **{field: "x" * (MAX_ENVELOPE_TEXT + 1)})])
    with pytest.raises(InvalidInput) as caught:
        parse_delivery(body)
    assert caught.value.field == f"[0].{field}" and "the limit is" in caught.value.problem
    at_limit = json.dumps([grid_event(kv_data(), id="x" * MAX_ENVELOPE_TEXT)])
    assert parse_delivery(at_limit)[0].id == "x" * MAX_ENVELOPE_TEXT


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_table_key_takes_any_string(value: str) -> None:
    key = table_key(value)
    assert key.isascii() and len(key) <= 400
    assert not any(c in key for c in "/\\#?") and all(32 <= ord(c) < 127 for c in key)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60).filter(str.strip), st.text(max_size=60))
def test_any_unicode_id_and_source_parse_to_a_table_safe_claim(event_id: str, source: str) -> None:
    body = json.dumps([grid_event(kv_data(), id=event_id, topic=source)])
    try:
        (event,) = parse_delivery(body)
    except InvalidInput:
        return  # an unpaired surrogate: refused by name
    assert isinstance(event, Event)
    assert len(event.claim_key) == 64 and event.claim_key.isalnum()


# ------------------------------------------------------------------ properties


json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
envelope_values = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values, "topic": json_values, "subject": json_values,
        "eventType": st.sampled_from([KV_TYPE, "Microsoft.EventGrid.SubscriptionValidationEvent",
                                      "Microsoft.ServiceBus.DeadletterMessagesAvailableWithNoListeners"])
        | json_values,
        "eventTime": st.sampled_from(["2026-01-01T00:00:00Z"]) | json_values,
        "data": json_values | st.builds(kv_data),
        "specversion": st.sampled_from(["1.0"]) | json_values,
        "source": json_values, "type": json_values, "time": json_values,
        "data_base64": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(envelope_values, st.lists(envelope_values, max_size=3), json_values),
       st.sampled_from(["", "application/json", "application/cloudevents+json",
                        "application/cloudevents-batch+json"]))
def test_parse_delivery_answers_events_or_invalid_input(payload: Any, content_type: str) -> None:
    try:
        items = parse_delivery(json.dumps(payload), content_type)
    except InvalidInput as exc:
        assert str(exc).startswith(exc.field)
        return
    assert items and all(isinstance(i, Event | SubscriptionValidation) for i in items)
    for item in items:
        if isinstance(item, Event):
            assert len(item.claim_key) == 64
            if item.type == KV_TYPE:
                with contextlib.suppress(InvalidInput):
                    keyvault_event(item)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.sampled_from(["[", "{\"k\":", "[{\"a\":"]))
def test_any_nesting_depth_is_parsed_or_refused(depth: int, opener: str) -> None:
    closer = {"[": "]", "{\"k\":": "}", "[{\"a\":": "}]"}[opener]
    body = opener * depth + "1" + closer * depth
    with contextlib.suppress(InvalidInput):
        parse_delivery(body)
