"""Replay targets come from the policy alone (issue 9.1): no caller-chosen host, namespace or
connection setting; Service Bus namespaces live under the cloud's suffix; redirect is off unless
the policy turns it on, and then only to the targets it lists. The store is Azurite; Service Bus
is the fake at the SDK boundary."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pitcrew.deadletter import api
from pitcrew.deadletter.ingest import scan
from pitcrew.errors import PolicyInvalid
from pitcrew.runtime import ConfigurationError, Runtime, Settings, get_runtime
from tests.integration.dlq_support import get_deadletter
from tests.integration.fake_servicebus import FakeNamespace
from tests.integration.test_deadletter_storage import (
    OPERATOR,
    READER,
    FakeClock,
    audit,
    drain,
    poison,
    queue,
    run_job,
    write_policy,
)

NS = "fake-sb.servicebus.windows.net"


def _setup(policy: Path, queue: str, replay: str = "") -> FakeNamespace:
    write_policy(policy, (
        "deadletter:\n"
        "  sources:\n"
        f"    - {{name: orders, type: servicebus, namespace: {NS}, queue: orders}}\n"
        f"    - {{name: work, type: storage-queue, queue: {queue}}}\n" + replay
    ))
    namespace = FakeNamespace(FakeClock(), lock_seconds=30)
    get_runtime().cached(f"servicebus:{NS}:", lambda: namespace)
    return namespace


@pytest.fixture
def ns(pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> FakeNamespace:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    return _setup(pitcrew_env, unique_name)


def _one_failed(ns: FakeNamespace) -> str:
    ns.dead_letter("orders", b'{"order": 1}', "ProcessingFailed", "boom", message_id="o-1")
    dl = get_deadletter()
    scan(dl, ["orders"])
    return next(m.id for m in dl.store.in_group(next(dl.store.groups()).id))


def _request(body: dict[str, object]) -> tuple[int, dict[str, object]]:
    result = api.request_replay(OPERATOR, json.dumps(body).encode())
    return result.status, result.body


@pytest.mark.parametrize("target", [
    "servicebus:127.0.0.1/q",
    "servicebus:evil.example.com/orders",
    "servicebus:fake-sb.servicebus.windows.net.evil.example.com/orders",
    "servicebus:fake-sb.servicebus.windows.net@AzureWebJobsStorage/orders",
    "queue:x@ANY_SETTING",
    "servicebus:fake-sb/orders@AzureWebJobsStorage",
])
def test_a_caller_chosen_host_or_setting_is_a_400_naming_the_allowed_targets(
        ns: FakeNamespace, target: str) -> None:
    message = _one_failed(ns)
    status, body = _request({"messages": [message], "target": target})
    assert status == 400, body
    assert body["field"] == "target"
    assert body["allowed"] == ["servicebus:fake-sb/orders"]
    # Nothing was queued, and no client for the caller's host was ever built.
    assert api.list_replays(READER, {}).body["jobs"] == []
    cached = list(get_runtime()._cache)
    assert not [k for k in cached if "127.0.0.1" in k or "evil" in k or "ANY_SETTING" in k]
    (record,) = audit("dlq.replay.request")  # who tried, and what, is on the record
    assert record["outcome"] == "failed" and record["actor"].endswith("ops@example.com")
    assert record["details"]["refusedTarget"] == target


def test_redirect_is_off_by_default_and_the_own_entity_is_always_allowed(
        ns: FakeNamespace) -> None:
    message = _one_failed(ns)
    status, body = _request({"messages": [message], "target": "queue:elsewhere"})
    assert status == 400 and "allow_redirect" in str(body["message"])
    # The message's own entity, written either way, is not a redirect.
    for own in ("servicebus:fake-sb/orders", f"servicebus:{NS}/orders"):
        status, body = _request({"messages": [message], "target": own, "dryRun": True})
        assert status == 202, body
        assert body["target"] == "servicebus:fake-sb/orders"
    status, body = _request({"messages": [message]})
    assert status == 202 and body["target"] == "original"
    assert run_job(str(body["id"])) == "succeeded"
    assert [m.message_id for m in ns.sent["orders"]] == ["o-1"]


def test_with_redirect_only_the_listed_targets_may_be_picked(
        pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    q = unique_name
    _setup(pitcrew_env, q, (
        "  replay:\n"
        "    allow_redirect: true\n"
        f"    targets: ['queue:{q}-retry', 'servicebus:fake-sb/orders-retry']\n"))
    poison(q, ["w-1"])
    dl = get_deadletter()
    scan(dl, ["work"])
    (message,) = [m.id for m in dl.store.in_group(next(dl.store.groups()).id)]
    status, body = _request({"messages": [message], "target": f"queue:{q}-other"})
    assert status == 400
    assert body["allowed"] == sorted([f"queue:{q}", f"queue:{q}-retry",
                                      "servicebus:fake-sb/orders-retry"])
    queue(f"{q}-retry").create_queue()  # a workload queue: it exists, pitcrew never makes it
    status, body = _request({"messages": [message], "target": f"queue:{q}-retry"})
    assert status == 202, body
    assert run_job(str(body["id"])) == "succeeded"
    assert [base64.b64decode(m).decode() for m in drain(f"{q}-retry")] == ["w-1"]


def test_a_policy_target_outside_the_servicebus_suffix_is_never_used(
        pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    ns = _setup(pitcrew_env, unique_name, (
        "  replay:\n"
        "    allow_redirect: true\n"
        "    targets: ['servicebus:sb.attacker.example/q']\n"))
    message = _one_failed(ns)
    status, body = _request({"messages": [message], "target": "servicebus:sb/q"})
    assert status == 400 and body["allowed"] == ["servicebus:fake-sb/orders"]


def test_servicebus_namespaces_are_names_under_the_clouds_suffix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    public = Runtime(Settings.from_env({}))
    assert public.servicebus_namespace("sb-prod") == "sb-prod.servicebus.windows.net"
    assert public.servicebus_namespace("SB-prod.servicebus.windows.net") == (
        "sb-prod.servicebus.windows.net")
    for bad in ("127.0.0.1", "evil.example.com", "a.b.servicebus.windows.net",
                "sb-prod.servicebus.windows.net.evil.com", "sb-prod:5671"):
        with pytest.raises(ConfigurationError):
            public.servicebus(bad)  # refused before any client exists
    china = Runtime(Settings.from_env({"PITCREW_SERVICEBUS_SUFFIX": "servicebus.chinacloudapi.cn"}))
    assert china.servicebus_namespace("sb-prod") == "sb-prod.servicebus.chinacloudapi.cn"
    with pytest.raises(ConfigurationError):
        china.servicebus_namespace("sb-prod.servicebus.windows.net")
    with pytest.raises(ConfigurationError):
        Settings.from_env({"PITCREW_SERVICEBUS_SUFFIX": "evil/../x"})
    with pytest.raises(ConfigurationError):
        public.servicebus("sb-prod", "NOT A SETTING")


def test_the_policy_refuses_malformed_targets_and_namespaces() -> None:
    from pitcrew.policy import parse_policy

    base = ("version: 1\nchannels:\n  h:\n    type: webhook\n    url: http://127.0.0.1:1/\n"
            "routes:\n  - name: all\n    channels: [h]\n")
    ok = parse_policy(base + "deadletter: {}\n")
    assert ok.deadletter.replay.allow_redirect is False
    for bad in ("deadletter:\n  sources:\n    - {name: s, type: servicebus, namespace: "
                "'10.0.0.1', queue: q}\n",
                "deadletter:\n  replay: {targets: ['http://127.0.0.1/x']}\n",
                "deadletter:\n  replay: {targets: ['queue:x@not a setting']}\n",
                "deadletter:\n  sources:\n    - {name: e, type: eventgrid-blob, container: dl, "
                "replay_to: 'servicebus:127.0.0.1/q'}\n"):
        with pytest.raises(PolicyInvalid):
            parse_policy(base + bad)
