"""Generated credentials over many rotations (issue 10.1, 10.5) and the lease (issue 11): a
secret rotated again and again, each rotation delivered twice and crashed at every step; a
failed run leaves no readable pending value and rolls the provider back; a step longer than the
lease is never entered twice."""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pitcrew.auth import encode_principal
from pitcrew.rotation import api as rotation_api
from pitcrew.rotation.engine import RotationEngine
from pitcrew.rotation.hooks import register_hook, unregister_hook
from pitcrew.rotation.ports import CredentialRejected
from pitcrew_dev.azure_endpoint import LocalCredential
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
from tests.integration.test_rotation_faults import Crash, FakeLogin
from tests.receiver import Receiver

INITIAL = "Initial-Password-0123456789-abcdef"


class Faults:
    """Crashes once at `point` each time it is armed (one crash per rotation)."""

    def __init__(self, point: str | None) -> None:
        self.point = point
        self.armed = False
        self.crashes = 0

    def __call__(self, where: str) -> None:
        if self.armed and where == self.point:
            self.armed = False
            self.crashes += 1
            raise Crash(where)


@pytest.fixture
def generated(world: RotationWorld, unique_name: str) -> Iterator[tuple[FakeLogin, str, str]]:
    secret = f"{unique_name}-db"
    written = world.client.set_secret(secret, INITIAL,
                                      expires_on=datetime.now(UTC) + timedelta(days=10))
    fake = FakeLogin(INITIAL)
    hook = f"login-{unique_name}"
    register_hook(hook, fake)
    world.rule(secret, "generated", hook=hook, target="sql://demo/app",
               password={"length": 40, "symbols": 2})
    world.write_policy(grace_hours=0)
    yield fake, secret, written.properties.version
    unregister_hook(hook)


GENERATED_POINTS = [f"{when}:{step}"
                    for step in ("prepare", "store", "apply", "test", "promote", "refresh")
                    for when in ("before", "effect", "after") if (when, step) != ("after",
                                                                                  "refresh")]


@pytest.mark.parametrize("point", [None, *GENERATED_POINTS])
def test_a_generated_secret_rotates_again_and_again(
    world: RotationWorld, generated: tuple[FakeLogin, str, str], point: str | None,
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver,
) -> None:
    """Three rotations in a row: each promoted, each value the one the provider holds. Before
    the fix the second stuck at `store` (403 reading the disabled pending version)."""
    fake, secret, version = generated
    faults = Faults(point)
    monkeypatch.setattr(rotation_api, "RotationEngine",
                        lambda services: RotationEngine(services, faults=faults))
    seen = {INITIAL}
    for rotation in range(1, 4):
        body = event_body(VAULT, secret, version, event_id=f"gen-{rotation}-{version}")
        if point:
            faults.armed = True
            with pytest.raises(Crash):
                deliver(body)
            # The dead instance's step lease and event claim lapse; Event Grid redelivers.
            time_travel(monkeypatch, timedelta(minutes=10 * rotation))
        result = deliver(body)
        assert outcome(result) == "handled", result.body
        assert "succeeded" in result.body["events"][0]["detail"], result.body
        assert outcome(deliver(body)) == "duplicate"  # the same event again: no effect
        latest = world.latest(secret)
        assert latest.properties.version != version, f"rotation {rotation} was not promoted"
        assert latest.value == fake.password, "the provider does not hold the promoted value"
        assert latest.value not in seen, "a value was reused"
        seen.add(latest.value)
        fake.test(secret, latest.value)  # the provider accepts it
        version = latest.properties.version
    assert faults.crashes == (3 if point else 0)
    assert len(set(fake.applied)) == 3, "one generated value per rotation"
    pending = world.versions(f"{secret}-pitcrew-pending")
    assert not any(p.enabled for p in pending), "a pending copy of a value stayed readable"
    assert [m["severity"] for m in receiver.received] == ["info"] * 3
    succeeded = [r for r in runs() if r["data"]["secret"] == secret]
    assert len(succeeded) == 3 and all(r["status"] == "succeeded" for r in succeeded)
    assert_no_secret_values(seen, audit_records(), receiver.received, runs())


def test_the_pending_copys_own_expiry_event_tells_nobody_to_act(
    world: RotationWorld, generated: tuple[FakeLogin, str, str], receiver: Receiver,
) -> None:
    """The pending copy is written with the new value's expiry, so Key Vault announces its
    expiry as it does the secret's. It is pitcrew's own (the secret's next rotation replaces
    it): before, a person was told no policy covers it and to issue a new credential."""
    _, secret, version = generated
    assert outcome(deliver(event_body(VAULT, secret, version))) == "handled"
    told = len(receiver.received)
    (pending, *_) = world.versions(f"{secret}-pitcrew-pending")
    for attempt in range(2):  # two deliveries (distinct events) of the same expiry
        result = deliver(event_body(VAULT, pending.name, pending.version,
                                    event_id=f"pending-{attempt}-{pending.version}"))
        assert outcome(result) == "handled", result.body
        assert "pending copy" in result.body["events"][0]["detail"], result.body
    assert len(receiver.received) == told, receiver.received[told:]
    assert [r["data"]["secret"] for r in runs()] == [secret]


def test_the_local_vault_answers_a_disabled_version_as_key_vault_does(
    world: RotationWorld, unique_name: str,
) -> None:
    """403 Forbidden / innererror SecretDisabled to a GET; the adapter reads it as a disabled
    version with no value (so the engine writes a new pending value)."""
    from pitcrew.azure.keyvault import KeyVaultSecretStore
    from pitcrew.runtime import get_runtime

    name = f"{unique_name}-off"
    first = world.client.set_secret(name, "first-value-0123456789")
    world.client.update_secret_properties(name, first.properties.version, enabled=False)
    context = ssl.create_default_context(cafile=str(world.local.ca_path))
    vault_token = LocalCredential("test").get_token("https://vault.azure.net/.default").token
    response = httpx.get(f"{world.local.vault_url(VAULT)}/secrets/{name}?api-version=7.5",
                         headers={"Authorization": f"Bearer {vault_token}"}, verify=context)
    assert response.status_code == 403
    assert response.json() == {"error": {
        "code": "Forbidden", "message": "Operation get is not allowed on a disabled secret.",
        "innererror": {"code": "SecretDisabled"}}}
    store = KeyVaultSecretStore(get_runtime().secret_client)
    latest = store.latest(VAULT, name)
    assert latest is not None
    assert (latest.version, latest.enabled, latest.value) == (first.properties.version, False,
                                                              None)
    assert store.get(VAULT, name, first.properties.version) is None
    second = world.client.set_secret(name, "second-value-0123456789")
    latest = store.latest(VAULT, name)
    assert latest is not None and latest.version == second.properties.version
    assert latest.enabled and latest.value == "second-value-0123456789"


class RollbackLogin(FakeLogin):
    """A provider that keeps the applied value until told to drop it, and refuses to log in
    with it (the test step fails), so the run fails after `apply`."""

    def __init__(self, password: str) -> None:
        super().__init__(password)
        self.previous = password
        self.rolled_back: list[str] = []

    def test(self, target: str, value: str) -> None:
        raise CredentialRejected(f"login to {target} refused")

    def rollback(self, target: str, value: str) -> None:
        self.rolled_back.append(value)
        if self.password == value:
            self.password = self.previous


@pytest.mark.parametrize("with_rollback", [True, False])
def test_a_failed_generated_run_rolls_back_and_leaves_no_readable_value(
    world: RotationWorld, unique_name: str, receiver: Receiver, with_rollback: bool,
) -> None:
    secret = f"{unique_name}-api"
    written = world.client.set_secret(secret, INITIAL)
    fake = RollbackLogin(INITIAL)
    if not with_rollback:
        fake = FakeLogin(INITIAL)
        fake.test = RollbackLogin.test.__get__(fake)  # type: ignore[method-assign]
    hook = f"rb-{unique_name}"
    register_hook(hook, fake)
    try:
        world.rule(secret, "generated", hook=hook, target="api://partner")
        world.write_policy()
        result = deliver(event_body(VAULT, secret, written.properties.version))
        assert outcome(result) == "handled"
    finally:
        unregister_hook(hook)
    (applied,) = fake.applied
    latest = world.latest(secret)
    assert latest.properties.version == written.properties.version and latest.value == INITIAL
    pending = world.versions(f"{secret}-pitcrew-pending")
    assert pending and not any(p.enabled for p in pending), "the pending value stayed readable"
    (run,) = [r for r in runs() if r["data"]["secret"] == secret]
    assert run["status"] == "failed"
    (alert,) = receiver.received
    assert alert["severity"] == "critical"
    rollback = [r for r in audit_records() if r["action"] == "rotation.rollback"]
    if with_rollback:
        assert isinstance(fake, RollbackLogin) and fake.rolled_back == [applied]
        assert fake.password == INITIAL, "the provider still accepts the unpromoted value"
        assert [r["outcome"] for r in rollback] == ["succeeded"]
        assert "rolled the unpromoted value back" in alert["summary"]
    else:
        assert [r["outcome"] for r in rollback] == ["skipped"]
        assert "has no rollback" in alert["summary"]
    assert_no_secret_values({applied, INITIAL}, audit_records(), receiver.received, runs())


def test_a_step_longer_than_the_lease_is_not_entered_twice(
    world: RotationWorld, unique_name: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 2 s lease and an `apply` that runs for 4.5 s: the lease is renewed while it runs, so
    the advance timer (firing meanwhile) finds the run busy instead of applying again. (2 s,
    not 1: a renewal every 0.67 s still holds when a loaded 2-core machine stalls a thread.)"""
    import time

    secret = f"{unique_name}-slow"
    written = world.client.set_secret(secret, INITIAL)
    fake = FakeLogin(INITIAL)
    timer: list[dict[str, int]] = []

    class Slow:
        def apply(self, target: str, value: str) -> None:
            fake.apply(target, value)
            if len(timer) == 0:
                time.sleep(4.5)
                timer.append(rotation_api.advance_rotations())

        def test(self, target: str, value: str) -> None:
            fake.test(target, value)

    hook = f"slow-{unique_name}"
    register_hook(hook, Slow())
    try:
        world.rule(secret, "generated", hook=hook, target="db://slow")
        world.write_policy(lease_seconds=2)
        result = deliver(event_body(VAULT, secret, written.properties.version))
        assert outcome(result) == "handled", result.body
    finally:
        unregister_hook(hook)
    assert timer and timer[0]["busy"] == 1 and timer[0]["advanced"] == 0, timer
    assert len(fake.applied) == 1, "a second instance entered the step"
    assert world.latest(secret).value == fake.password


def test_rotation_recovers_within_a_minute_by_default() -> None:
    """A crashed step is free again after the default lease, and the advance timer (every
    minute; tests/functions/test_contract.py checks the schedule) resumes it."""
    from pitcrew.rotation.policy import RotationPolicy

    assert RotationPolicy().step_lease_seconds <= 30


class ChattyLogin(FakeLogin):
    """A provider whose driver error quotes the connection string, password included, past
    the first 250 characters: the value straddles the 300-character cut of a description."""

    def test(self, target: str, value: str) -> None:
        raise CredentialRejected("login refused; connection " + "x" * 230
                                 + f" Server=db;User=app;Password={value};")


def test_a_hook_error_quoting_the_value_leaks_no_part_of_it(
    world: RotationWorld, unique_name: str, receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: the description was cut at 300 characters before the value was scrubbed, so
    its first part reached the run, the audit, the notification and the log."""
    caplog.set_level(logging.DEBUG)
    secret = f"{unique_name}-db"
    written = world.client.set_secret(secret, INITIAL,
                                      expires_on=datetime.now(UTC) + timedelta(days=10))
    fake = ChattyLogin(INITIAL)
    hook = f"chatty-{unique_name}"
    register_hook(hook, fake)
    try:
        world.rule(secret, "generated", hook=hook, target="sql://demo/app",
                   password={"length": 40, "symbols": 2})
        world.write_policy(grace_hours=0)
        body = event_body(VAULT, secret, written.properties.version)
        result = deliver(body)
        assert outcome(result) == "handled", result.body
        again = deliver(body)  # the same event twice: nothing more, nothing leaked
        assert outcome(again) == "duplicate"
    finally:
        unregister_hook(hook)
    (value,) = fake.applied
    (run,) = [r for r in runs() if r["data"]["secret"] == secret]
    assert run["status"] == "failed" and "[redacted]" in run["data"]["outcome"]
    assert [m["severity"] for m in receiver.received] == ["critical"]
    for text in (json.dumps(run), json.dumps(audit_records(), default=str),
                 json.dumps(receiver.received), caplog.text, json.dumps(result.body)):
        assert value[:10] not in text, "a part of the generated value leaked"


class UndoableLogin(FakeLogin):
    """A provider that takes values and drops one when told to (the hook's `rollback`)."""

    def __init__(self, password: str) -> None:
        super().__init__(password)
        self.previous = password
        self.rolled_back: list[str] = []

    def apply(self, target: str, value: str) -> None:
        self.previous = self.password
        super().apply(target, value)

    def rollback(self, target: str, value: str) -> None:
        self.rolled_back.append(value)
        if self.password == value:
            self.password = self.previous


class LostAnswer:
    """A secret store whose write of `secret` itself happens but whose answer is lost (the
    connection drops after Key Vault wrote the version) while `lose` is set."""

    def __init__(self, real: Any, secret: str) -> None:
        self.real = real
        self.secret = secret
        self.lose = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def set(self, vault: str, name: str, value: str, **kwargs: Any) -> Any:
        written = self.real.set(vault, name, value, **kwargs)
        if self.lose and name == self.secret:
            from azure.core.exceptions import ServiceResponseError

            raise ServiceResponseError("Connection aborted: the answer was lost")
        return written


def lossy_engine(secret: str) -> RotationEngine:
    from dataclasses import replace

    from pitcrew.bootstrap import get_services

    services = get_services()
    return RotationEngine(services, replace(services.rotation,
                                            secrets=LostAnswer(services.rotation.secrets,
                                                               secret)))


ROTATOR_HEADERS = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Rotator"])}


@contextlib.contextmanager
def lossy_generated_secret(world: RotationWorld, unique_name: str, hook_prefix: str
                           ) -> Iterator[tuple[str, Any, UndoableLogin]]:
    """A generated secret whose hook can roll back, owned by a one-attempt policy without a
    grace period: (secret, the version written, the hook's fake provider)."""
    secret = f"{unique_name}-db"
    written = world.client.set_secret(secret, INITIAL,
                                      expires_on=datetime.now(UTC) + timedelta(days=10))
    fake = UndoableLogin(INITIAL)
    hook = f"{hook_prefix}-{unique_name}"
    register_hook(hook, fake)
    try:
        world.rule(secret, "generated", hook=hook, target="sql://demo/app")
        world.write_policy(grace_hours=0, max_attempts=1)
        yield secret, written, fake
    finally:
        unregister_hook(hook)


def test_a_promote_whose_answer_was_lost_is_not_rolled_back_and_resumes(
    world: RotationWorld, unique_name: str, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last attempt at `promote`: Key Vault wrote the new version (tagged with the run) but
    the answer was lost. Before: the run, taking the value for never promoted, had the hook roll
    it back and disabled the pending copy, though the latest version holds it: every consumer
    reading the secret got a value the provider no longer accepted."""
    with lossy_generated_secret(world, unique_name, "undo") as (secret, written, fake):
        run = lossy_engine(secret).start(VAULT, secret, written.properties.version,
                                         actor="test", correlation_id="c", reason="test")
        latest = world.latest(secret)
        assert latest.properties.version != written.properties.version  # it was written
        assert (run.status, run.data["failed_step"]) == ("failed", "promote")
        assert run.data["new_version"] == latest.properties.version
        assert f"version {latest.properties.version} all the same" in run.data["outcome"]
        assert fake.rolled_back == [] and fake.password == latest.value, "rolled back"
        assert not any(p.enabled for p in world.versions(f"{secret}-pitcrew-pending"))
        (alert,) = receiver.received
        assert f"Version {latest.properties.version} was promoted" in alert["summary"]
        assert "rolled" not in alert["summary"] and "was not changed" not in alert["summary"]

        # The operator resumes it (twice: the second is a new rotation, not the same again).
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
        body = json.dumps({"vault": VAULT, "secret": secret}).encode()
        resumed = rotation_api.request_rotation(ROTATOR_HEADERS, body)
        assert resumed.status == 200, resumed.body
        assert resumed.body["run"]["id"] == run.run_id
        assert resumed.body["run"]["status"] == "succeeded", resumed.body
        assert world.latest(secret).properties.version == latest.properties.version
        assert fake.applied == [latest.value] and fake.rolled_back == []
        again = rotation_api.request_rotation(ROTATOR_HEADERS, body)
        assert again.status == 200 and again.body["run"]["id"] != run.run_id, again.body
        assert world.latest(secret).value == fake.password
        assert len(fake.applied) == 2 and fake.rolled_back == []
    assert_no_secret_values({INITIAL, *fake.applied}, audit_records(), receiver.received,
                            runs())


def test_a_dual_key_promote_whose_answer_was_lost_says_it_was_promoted(
    world: RotationWorld, unique_name: str, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeded = world.seed_dual("storage-keys", unique_name)
    world.write_policy(max_attempts=1)
    run = lossy_engine(seeded.secret).start(VAULT, seeded.secret, seeded.version,
                                            actor="test", correlation_id="c", reason="test")
    latest = world.latest(seeded.secret)
    assert (run.status, run.data["failed_step"]) == ("failed", "promote")
    assert run.data["new_version"] == latest.properties.version != seeded.version
    (alert,) = receiver.received
    assert "was not changed" not in alert["summary"]
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    resumed = rotation_api.request_rotation(ROTATOR_HEADERS, json.dumps(
        {"vault": VAULT, "secret": seeded.secret}).encode())
    assert resumed.body["run"]["id"] == run.run_id
    assert resumed.body["run"]["status"] == "succeeded", resumed.body
    assert world.local.regenerations(seeded.resource) == {"key2": 1}
    assert world.latest(seeded.secret).properties.version == latest.properties.version


def test_a_promote_nobody_can_verify_is_not_rolled_back(
    world: RotationWorld, unique_name: str, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer of the promote is lost and the vault cannot be read right after either:
    whether the value is promoted is unknown, so it is not rolled back (rolling back a promoted
    value is an outage) and the alert says what to check. Resumed later, the run finds its
    version and finishes."""
    with lossy_generated_secret(world, unique_name, "blind") as (secret, written, fake):
        engine = lossy_engine(secret)
        store = engine.ports.secrets
        assert isinstance(store, LostAnswer)
        real_latest = store.real.latest

        def blind_after_the_write(vault: str, name: str) -> Any:
            if name == secret and world.latest(secret).properties.version != (
                    written.properties.version):
                raise ConnectionError("the vault is unreachable")
            return real_latest(vault, name)

        monkeypatch.setattr(store, "latest", blind_after_the_write, raising=False)
        run = engine.start(VAULT, secret, written.properties.version, actor="test",
                           correlation_id="c", reason="test")
        assert (run.status, run.data["failed_step"]) == ("failed", "promote")
        assert "new_version" not in run.data and run.data["promotion_unknown"]
        assert fake.rolled_back == [] and fake.password == world.latest(secret).value
        (alert,) = receiver.received
        assert "could not be read back" in alert["summary"], alert["summary"]
        assert run.run_id in alert["summary"] and "was not changed" not in alert["summary"]

        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
        resumed = rotation_api.request_rotation(ROTATOR_HEADERS, json.dumps(
            {"vault": VAULT, "secret": secret}).encode())
        assert resumed.body["run"]["id"] == run.run_id
        assert resumed.body["run"]["status"] == "succeeded", resumed.body
        assert fake.applied == [world.latest(secret).value] and fake.rolled_back == []
