"""Rotation under failure: a crash at every step boundary, 50 concurrent deliveries, a key the
service refuses, a provider that keeps failing, generated credentials, plan mode and dry-run."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pitcrew.auth import encode_principal
from pitcrew.bootstrap import get_services
from pitcrew.rotation import api as rotation_api
from pitcrew.rotation.engine import RotationEngine
from pitcrew.rotation.hooks import meets, register_hook, unregister_hook
from pitcrew.rotation.policy import PasswordPolicy
from pitcrew.rotation.ports import CredentialRejected, RotationPorts
from tests.integration.rotation_support import (
    VAULT,
    RotationWorld,
    assert_no_secret_values,
    audit_records,
    deliver,
    event_body,
    outcome,
    runs,
    time_travel,
)
from tests.integration.test_rotation import assert_rotated_once
from tests.receiver import Receiver


class Crash(BaseException):
    """Raised at a fault point: nothing after it runs, as if the instance died."""


def crash_at(monkeypatch: pytest.MonkeyPatch, point: str) -> list[str]:
    crashed: list[str] = []

    def faults(where: str) -> None:
        if where == point and not crashed:
            crashed.append(where)
            raise Crash(where)

    monkeypatch.setattr(rotation_api, "RotationEngine",
                        lambda services: RotationEngine(services, faults=faults))
    return crashed


DUAL_POINTS = [f"{when}:{step}" for step in ("prepare", "store", "test", "promote", "refresh")
               for when in ("before", "effect", "after") if (when, step) != ("after", "refresh")]


@pytest.mark.parametrize("point", DUAL_POINTS)
def test_crash_at_every_step_boundary_then_redelivery(
    world: RotationWorld, point: str, unique_name: str, topic: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeded = world.seed_dual("cosmos-keys", unique_name)
    crashed = crash_at(monkeypatch, point)
    body = event_body(VAULT, seeded.secret, seeded.version, event_id=f"crash-{unique_name}")
    with pytest.raises(Crash):
        deliver(body)
    assert crashed == [point]
    # The key in use is untouched whatever the crash left behind.
    assert world.keys(seeded)["primaryMasterKey"] == seeded.initial_keys["primaryMasterKey"]
    # Event Grid redelivers once the dead instance's leases have lapsed.
    time_travel(monkeypatch, timedelta(minutes=10))
    result = deliver(body)
    assert outcome(result) == "handled", result.body
    assert_rotated_once(world, seeded)
    assert outcome(deliver(body)) == "duplicate"
    versions = world.versions(seeded.secret)
    assert len(versions) == 2, "exactly one new version"
    ids = {e["id"] for batch in topic.received for e in batch}
    assert len(ids) == 1  # at-least-once publication, one event id: consumers dedupe


def test_fifty_concurrent_duplicate_deliveries_regenerate_once(
    world: RotationWorld, unique_name: str
) -> None:
    seeded = world.seed_dual("servicebus-keys", unique_name)
    body = event_body(VAULT, seeded.secret, seeded.version, event_id=f"storm-{unique_name}")
    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(lambda _: outcome(deliver(body)), range(50)))
    assert outcomes.count("handled") == 1
    assert set(outcomes) <= {"handled", "duplicate", "retry"}
    assert outcome(deliver(body)) == "duplicate"  # the platform's retries of the 503s
    assert_rotated_once(world, seeded)


def test_fifty_concurrent_distinct_events_for_one_version_regenerate_once(
    world: RotationWorld, unique_name: str
) -> None:
    """NearExpiry, Expired and redeliveries through other subscriptions: distinct event ids,
    one version, so one run."""
    seeded = world.seed_dual("storage-keys", unique_name)
    bodies = [event_body(VAULT, seeded.secret, seeded.version, event_id=f"{unique_name}-{i}",
                         event_type="Microsoft.KeyVault.Secret"
                         + ("NearExpiry" if i % 2 else "Expired")) for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(lambda b: outcome(deliver(b)), bodies))
    assert world.local.regenerations(seeded.resource) == {"key2": 1}
    for body, first in zip(bodies, outcomes, strict=True):  # the platform retries the 503s
        result = first
        for _ in range(50):
            if result != "retry":
                break
            time.sleep(0.05)
            result = outcome(deliver(body))
        assert result == "handled"
    assert_rotated_once(world, seeded)
    assert len([r for r in runs() if r["data"]["secret"] == seeded.secret]) == 1


def _with_provider(name: str, wrap: Any) -> None:
    services = get_services()
    ports = services.rotation
    services.rotation = RotationPorts(
        secrets=ports.secrets, providers={**ports.providers, name: wrap(ports.providers[name])},
        events=ports.events, sites=ports.sites)


def test_a_refused_key_stops_the_run_and_leaves_the_current_version(
    world: RotationWorld, unique_name: str, receiver: Receiver, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seeded = world.seed_dual("storage-keys", unique_name)

    class SignsWithAWrongKey:
        """The real SharedKey test, signed with a corrupted copy of the new key."""

        def __init__(self, real: Any) -> None:
            self.real, self.strategy, self.key_slots = real, real.strategy, real.key_slots

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        def test(self, resource_id: str, slot: str, value: str) -> None:
            wrong = value[:-4] + ("AAA=" if not value.endswith("AAA=") else "BBB=")
            self.real.test(resource_id, slot, wrong)

    _with_provider("storage-keys", SignsWithAWrongKey)
    result = deliver(event_body(VAULT, seeded.secret, seeded.version))
    assert outcome(result) == "handled"
    assert "failed" in result.body["events"][0]["detail"]
    latest = world.latest(seeded.secret)
    assert latest.properties.version == seeded.version
    assert latest.value == seeded.initial_keys["key1"] == world.keys(seeded)["key1"]
    assert world.local.regenerations(seeded.resource) == {"key2": 1}  # never key1
    (alert,) = receiver.received
    assert alert["kind"] == "rotation" and alert["severity"] == "critical"
    assert "rejected" in alert["summary"] and alert["actions"]
    assert [r["action"] for r in audit_records()][-1] == "rotation.failed"
    assert_no_secret_values(seeded.values | set(world.keys(seeded).values()), caplog.text,
                            audit_records(), receiver.received, runs(), result.body)


def test_a_provider_that_keeps_failing_ends_in_an_alert(
    world: RotationWorld, unique_name: str, receiver: Receiver, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seeded = world.seed_dual("eventhubs-keys", unique_name)
    leaked = seeded.initial_keys["primaryKey"]

    class Broken:
        def __init__(self, real: Any) -> None:
            self.real, self.strategy, self.key_slots = real, real.strategy, real.key_slots

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        def regenerate(self, resource_id: str, slot: str) -> None:
            # A badly behaved error that quotes a key: pitcrew must not repeat it anywhere.
            raise RuntimeError(f"upstream said: conflicting key {leaked}")

    _with_provider("eventhubs-keys", Broken)
    body = event_body(VAULT, seeded.secret, seeded.version, event_id=f"broken-{unique_name}")
    messages = []
    for _ in range(2):  # max_attempts is 3: two failures are retried by the platform
        result = deliver(body)
        assert result.status == 500
        messages.append(result.body)
        assert receiver.received == []
    result = deliver(body)
    assert outcome(result) == "handled"  # the third failure ends the run: alert, not retry
    assert outcome(deliver(body)) == "duplicate"
    (alert,) = receiver.received
    assert alert["severity"] == "critical" and "3 times" in alert["summary"]
    assert world.latest(seeded.secret).properties.version == seeded.version
    assert world.local.regenerations(seeded.resource) == {}
    (run,) = [r for r in runs() if r["data"]["secret"] == seeded.secret]
    assert run["status"] == "failed" and run["data"]["attempts"] == 3
    assert_no_secret_values({leaked}, caplog.text, audit_records(), receiver.received, runs(),
                            messages, result.body)


class FakeLogin:
    """A provider holding one password (a database login); the far side of the hook."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.applied: list[str] = []

    def apply(self, target: str, value: str) -> None:
        self.password = value
        self.applied.append(value)

    def test(self, target: str, value: str) -> None:
        if value != self.password:
            raise CredentialRejected(f"login to {target} failed")


@pytest.fixture
def login(world: RotationWorld, unique_name: str) -> Iterator[tuple[FakeLogin, str, str]]:
    initial = "Initial-Password-0123456789-abcdef"
    secret = f"{unique_name}-db"
    written = world.client.set_secret(secret, initial,
                                      expires_on=datetime.now(UTC) + timedelta(days=10))
    fake = FakeLogin(initial)
    register_hook(f"login-{unique_name}", fake)
    world.rule(secret, "generated", hook=f"login-{unique_name}", target="sql://demo/app",
               password={"length": 40, "symbols": 2})
    world.write_policy()
    yield fake, secret, written.properties.version
    unregister_hook(f"login-{unique_name}")


GENERATED_POINTS = [f"{when}:{step}" for step in ("store", "apply", "promote")
                    for when in ("effect", "after")]


@pytest.mark.parametrize("point", [None, *GENERATED_POINTS])
def test_generated_credential(
    world: RotationWorld, login: tuple[FakeLogin, str, str], point: str | None,
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, secret, version = login
    body = event_body(VAULT, secret, version)
    if point:
        crash_at(monkeypatch, point)
        with pytest.raises(Crash):
            deliver(body)
        time_travel(monkeypatch, timedelta(minutes=10))
    assert outcome(deliver(body)) == "handled"
    latest = world.latest(secret)
    assert latest.properties.version != version
    assert latest.value == fake.password
    assert meets(PasswordPolicy(length=40, symbols=2), latest.value)
    assert len(set(fake.applied)) == 1, "one generated value, applied (maybe again), no other"
    pending = world.versions(f"{secret}-pitcrew-pending")
    assert pending, "the value waited in the pending secret before promotion"
    assert all(p.tags["pitcrew-pending-for"] == secret for p in pending)
    # Once promoted, no second readable copy of the value is left behind.
    assert not any(p.enabled for p in pending)
    assert latest.properties.tags["pitcrew-strategy"] == "generated"
    assert_no_secret_values({latest.value, "Initial-Password-0123456789-abcdef"}, caplog.text,
                            audit_records(), receiver.received, runs())


def test_generated_credential_the_provider_refuses_is_never_published(
    world: RotationWorld, login: tuple[FakeLogin, str, str], receiver: Receiver,
) -> None:
    fake, secret, version = login
    fake.apply = lambda target, value: None  # type: ignore[method-assign] # ignores the change
    assert outcome(deliver(event_body(VAULT, secret, version))) == "handled"
    latest = world.latest(secret)
    assert latest.properties.version == version
    assert latest.value == "Initial-Password-0123456789-abcdef"
    assert [m["severity"] for m in receiver.received] == ["critical"]


def test_plan_mode_and_dry_run_change_nothing(
    world: RotationWorld, unique_name: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeded = world.seed_dual("cosmos-keys", unique_name)
    world.write_policy(mode="plan")
    result = deliver(event_body(VAULT, seeded.secret, seeded.version))
    assert outcome(result) == "handled"
    assert result.body["events"][0]["detail"].startswith("planned")
    assert [m["kind"] for m in receiver.received] == ["rotation"]
    assert "secondary" in receiver.received[0]["summary"]

    world.write_policy(mode="act")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    body = f'{{"vault": "{VAULT}", "secret": "{seeded.secret}", "dry_run": true}}'.encode()
    assert rotation_api.request_rotation({}, body).status == 401
    reader = {"X-MS-CLIENT-PRINCIPAL": encode_principal("r@example.com", ["Reader"])}
    assert rotation_api.request_rotation(reader, body).status == 403
    rotator = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Rotator"])}
    planned = rotation_api.request_rotation(rotator, body)
    assert planned.status == 200 and planned.body["dryRun"] is True
    assert planned.body["plan"]["would_regenerate"] == "secondary"
    assert planned.body["plan"]["holds"] == "primary"
    assert world.local.regenerations(seeded.resource) == {}
    assert world.latest(seeded.secret).properties.version == seeded.version
    assert {r["outcome"] for r in audit_records()} == {"planned"}

    # Then for real, and listed.
    done = rotation_api.request_rotation(rotator, body.replace(b"true", b"false"))
    assert done.status == 200 and done.body["run"]["status"] == "succeeded"
    assert_rotated_once(world, seeded)
    listed = rotation_api.list_rotations(reader, {})
    assert listed.status == 200
    (run,) = [r for r in listed.body["rotations"] if r["secret"] == seeded.secret]
    assert run["step"] == "done" and run["outcome"] == "rotated"
    assert run["requestedBy"] == "user:ops@example.com"
    assert run["regenerated"] == "secondary"


def test_an_operator_retries_a_failed_run_once_the_cause_is_fixed(
    world: RotationWorld, login: tuple[FakeLogin, str, str], receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, secret, version = login
    real_apply = fake.apply
    fake.apply = lambda target, value: None  # type: ignore[method-assign] # broken provider
    body = event_body(VAULT, secret, version)
    assert outcome(deliver(body)) == "handled"
    assert world.latest(secret).properties.version == version
    fake.apply = real_apply  # type: ignore[method-assign] # fixed
    assert outcome(deliver(event_body(VAULT, secret, version))) == "handled"  # events: no change
    assert world.latest(secret).properties.version == version
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    rotator = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Rotator"])}
    result = rotation_api.request_rotation(
        rotator, f'{{"vault": "{VAULT}", "secret": "{secret}"}}'.encode())
    assert result.status == 200 and result.body["run"]["status"] == "succeeded", result.body
    assert world.latest(secret).value == fake.password
    assert "rotation.retried" in [r["action"] for r in audit_records()]
