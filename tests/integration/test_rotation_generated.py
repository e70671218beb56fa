"""Generated credentials over many rotations (issue 10.1, 10.5) and the lease (issue 11): a
secret rotated again and again, each rotation delivered twice and crashed at every step; a
failed run leaves no readable pending value and rolls the provider back; a step longer than the
lease is never entered twice."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pitcrew.rotation import api as rotation_api
from pitcrew.rotation.engine import RotationEngine
from pitcrew.rotation.hooks import register_hook, unregister_hook
from pitcrew.rotation.ports import CredentialRejected
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
    response = httpx.get(f"{world.local.vault_url(VAULT)}/secrets/{name}?api-version=7.5",
                         headers={"Authorization": "Bearer local.e30"}, verify=context)
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
