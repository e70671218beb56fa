"""The rotation engine's operator surface under the conditions of issue 10: a broken hook module,
a vault pitcrew cannot read, a policy changed while a run waits, emergency rotation (force, both
keys) and the paged `GET /api/rotations`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from pitcrew.auth import encode_principal
from pitcrew.rotation import api as rotation_api
from pitcrew.rotation.engine import RotationEngine
from tests.integration.rotation_support import (
    VAULT,
    RotationWorld,
    audit_records,
    deliver,
    deny_vault,
    event_body,
    outcome,
    runs,
    time_travel,
)
from tests.integration.test_rotation_faults import Crash
from tests.receiver import Receiver

ROTATOR = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Rotator"])}
READER = {"X-MS-CLIENT-PRINCIPAL": encode_principal("r@example.com", ["Reader"])}


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")


def rotate(vault: str, secret: str, **extra: Any) -> Any:
    return rotation_api.request_rotation(
        ROTATOR, json.dumps({"vault": vault, "secret": secret, **extra}).encode())


# ------------------------------------------------------------------ 10.2 hooks


def test_a_broken_hook_module_fails_only_the_rules_using_it(
    world: RotationWorld, unique_name: str, receiver: Receiver,
) -> None:
    """Before: ModuleNotFoundError on every secret event (500), the expiry of an unruled secret
    never reached a person."""
    seeded = world.seed_dual("cosmos-keys", unique_name)
    broken = world.client.set_secret(f"{unique_name}-db", "Initial-Password-0123456789")
    loose = world.client.set_secret(f"{unique_name}-loose", "nobody-rotates-this-0123")
    world.rule(f"{unique_name}-db", "generated", hook="from-the-broken-module")
    world.extra = "  hook_modules: [no_such_pitcrew_hooks_module]\n"
    world.write_policy()

    unruled = deliver(event_body(VAULT, f"{unique_name}-loose", loose.properties.version))
    assert outcome(unruled) == "handled", unruled.body
    assert [m["kind"] for m in receiver.received] == ["expiry"]

    rotated = deliver(event_body(VAULT, seeded.secret, seeded.version))
    assert outcome(rotated) == "handled", rotated.body
    assert "succeeded" in rotated.body["events"][0]["detail"]

    failed = deliver(event_body(VAULT, f"{unique_name}-db", broken.properties.version))
    assert outcome(failed) == "handled", failed.body
    alert = receiver.received[-1]
    assert alert["severity"] == "critical"
    assert "from-the-broken-module" in alert["summary"]
    assert "no_such_pitcrew_hooks_module failed to import" in alert["summary"]
    assert world.latest(f"{unique_name}-db").properties.version == broken.properties.version


# ------------------------------------------------------------------ 10.3 vault access


@pytest.fixture
def denied(world: RotationWorld) -> Iterator[None]:
    deny_vault(world.local, VAULT, ["pitcrew-app"])
    yield
    deny_vault(world.local, VAULT, [])


def test_a_vault_pitcrew_may_not_read_is_told_not_a_500(
    world: RotationWorld, unique_name: str, receiver: Receiver, operator: None,
) -> None:
    seeded = world.seed_dual("cosmos-keys", unique_name)
    deny_vault(world.local, VAULT, ["pitcrew-app"])
    try:
        result = deliver(event_body(VAULT, seeded.secret, seeded.version))
        assert outcome(result) == "handled", result.body
        (alert,) = receiver.received
        assert alert["severity"] == "critical"
        assert f"pitcrew's identity lacks Key Vault Secrets Officer on vault {VAULT}" in (
            alert["summary"])
        answer = rotate(VAULT, seeded.secret)
        assert answer.status == 403, answer.body
        assert answer.body["error"] == "vault_access_denied"
        assert answer.body["missingRole"] == "Key Vault Secrets Officer"
        assert VAULT in answer.body["message"]
    finally:
        deny_vault(world.local, VAULT, [])
    assert world.local.regenerations(seeded.resource) == {}
    # Once the role is granted, the operator retries and it rotates.
    retried = rotate(VAULT, seeded.secret)
    assert retried.status == 200 and retried.body["run"]["status"] == "succeeded", retried.body


def test_an_unknown_vault_is_told_and_a_404_for_rotate(
    world: RotationWorld, receiver: Receiver, operator: None,
) -> None:
    world.rules.append(
        "    - vault: ghost-kv\n      secret: orders-key\n      strategy: cosmos-keys\n"
        "      resource: /subscriptions/s/resourceGroups/rg/providers/Microsoft.DocumentDB/"
        "databaseAccounts/ghost\n")
    world.extra = "  use_tags: true\n"
    world.write_policy()
    # An unruled secret in a vault pitcrew cannot read (tags consulted): the expiry still
    # reaches a person, with what is wrong with the vault.
    result = deliver(event_body("other-kv", "orders-key", "0" * 32))
    assert outcome(result) == "handled", result.body
    kinds = sorted(m["kind"] for m in receiver.received)
    assert kinds == ["expiry", "rotation"]
    (vault_alert,) = [m for m in receiver.received if m["kind"] == "rotation"]
    assert "other-kv" in vault_alert["title"] and "does not exist" in vault_alert["summary"]
    # A ruled one: the run stops at once and says so.
    result = deliver(event_body("ghost-kv", "orders-key", "1" * 32))
    assert outcome(result) == "handled", result.body
    assert "ghost-kv" in receiver.received[-1]["summary"]
    answer = rotate("ghost-kv", "orders-key")
    assert answer.status == 404, answer.body
    assert answer.body["error"] == "vault_not_found" and answer.body["vault"] == "ghost-kv"
    assert any(r["action"] == "rotation.vault_unavailable" for r in audit_records())


def test_a_vault_the_policy_does_not_name_is_refused_before_any_call(
    world: RotationWorld, receiver: Receiver, operator: None,
) -> None:
    """A caller never chooses where pitcrew connects: a vault named by no rotation rule and not
    in expiry.vaults is a 400 naming `vault`, dry run or not, with nothing read or told."""
    world.extra = "  use_tags: true\n"  # tags would otherwise be read from the named vault
    world.write_policy()
    for extra in ({}, {"dry_run": True}, {}):  # twice for real, once dry
        answer = rotate("someone-elses-kv", "orders-key", **extra)
        assert answer.status == 400, answer.body
        assert answer.body["field"] == "vault", answer.body
        assert "someone-elses-kv" in answer.body["message"]
    assert receiver.received == []
    assert not any("someone-elses-kv" in r["target"] for r in audit_records())


# ------------------------------------------------------------------ 10.4 waiting


def test_a_waiting_run_follows_the_policy_in_force(
    world: RotationWorld, unique_name: str, operator: None,
) -> None:
    seeded = world.seed_dual("cosmos-keys", unique_name)
    assert outcome(deliver(event_body(VAULT, seeded.secret, seeded.version))) == "handled"
    waiting = rotate(VAULT, seeded.secret)
    assert waiting.status == 202, waiting.body
    run = waiting.body["run"]
    assert run["status"] == "waiting" and run["notBefore"]
    assert "grace period (24 h)" in run["waitReason"] and run["notBefore"] in run["waitReason"]
    first_until = run["notBefore"]

    world.write_policy(grace_hours=48)
    rotation_api.advance_rotations()
    (listed,) = [r for r in rotation_api.list_rotations(READER, {"status": "waiting"})
                 .body["rotations"] if r["secret"] == seeded.secret]
    assert listed["notBefore"] > first_until and "48 h" in listed["waitReason"]

    world.write_policy(grace_hours=0)
    done = rotate(VAULT, seeded.secret)
    assert done.status == 200 and done.body["run"]["status"] == "succeeded", done.body
    assert world.local.regenerations(seeded.resource) == {"secondaryMasterKey": 1,
                                                          "primaryMasterKey": 1}


# ------------------------------------------------------------------ 10.7 emergency


def test_force_rotates_inside_the_grace_period_with_an_audited_reason(
    world: RotationWorld, unique_name: str, operator: None,
) -> None:
    seeded = world.seed_dual("storage-keys", unique_name)
    assert outcome(deliver(event_body(VAULT, seeded.secret, seeded.version))) == "handled"
    no_reason = rotate(VAULT, seeded.secret, force=True)
    assert no_reason.status == 400 and no_reason.body["field"] == "reason"
    reader = rotation_api.request_rotation(READER, json.dumps(
        {"vault": VAULT, "secret": seeded.secret, "force": True, "reason": "x"}).encode())
    assert reader.status == 403
    forced = rotate(VAULT, seeded.secret, force=True, reason="key pasted in a public issue")
    assert forced.status == 200 and forced.body["run"]["status"] == "succeeded", forced.body
    assert forced.body["run"]["force"] is True
    assert world.local.regenerations(seeded.resource) == {"key2": 1, "key1": 1}
    (record,) = [r for r in audit_records() if r["action"] == "rotation.forced"]
    assert record["actor"] == "user:ops@example.com"
    assert record["details"]["reason"] == "key pasted in a public issue"
    # The first version held key1, which was regenerated: it can no longer authenticate.
    (first,) = [v for v in world.versions(seeded.secret) if v.version == seeded.version]
    assert not first.enabled


@pytest.mark.parametrize("point", [None, "effect:first", "before:retire", "after:settle"])
def test_both_keys_after_a_leak(
    world: RotationWorld, unique_name: str, operator: None, point: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--both: the other key, promote, the grace period, then the key the leaked version held;
    persisted, resumable, each key regenerated once; the leaked version is disabled."""
    seeded = world.seed_dual("cosmos-keys", unique_name)
    crashed: list[str] = []

    def faults(where: str) -> None:
        if where == point and not crashed:
            crashed.append(where)
            raise Crash(where)

    monkeypatch.setattr(rotation_api, "RotationEngine",
                        lambda services: RotationEngine(services, faults=faults))
    assert rotate(VAULT, seeded.secret, both=True, force=True).status == 400  # no reason
    first = rotate(VAULT, seeded.secret, both=True, force=True, reason="leaked in a log")
    assert first.status == 202, first.body
    run = first.body["run"]
    assert run["status"] == "waiting" and run["step"] == "settle" and run["both"] is True
    assert "before the key version" in run["waitReason"]
    assert world.local.regenerations(seeded.resource) == {"secondaryMasterKey": 1}
    assert rotation_api.advance_rotations()["advanced"] >= 1  # not due yet
    assert world.local.regenerations(seeded.resource) == {"secondaryMasterKey": 1}

    time_travel(monkeypatch, timedelta(hours=25))
    if point:
        with pytest.raises(Crash):
            rotation_api.advance_rotations()
        time_travel(monkeypatch, timedelta(hours=25, minutes=5))
    rotation_api.advance_rotations()
    rotation_api.advance_rotations()  # again: nothing more happens
    assert world.local.regenerations(seeded.resource) == {"secondaryMasterKey": 1,
                                                          "primaryMasterKey": 1}
    keys = world.keys(seeded)
    assert keys["primaryMasterKey"] != seeded.initial_keys["primaryMasterKey"]
    latest = world.latest(seeded.secret)
    assert latest.value == keys["secondaryMasterKey"]  # consumers were never cut off
    versions = {v.version: v.enabled for v in world.versions(seeded.secret)}
    assert versions[seeded.version] is False, "the leaked version is still readable"
    assert versions[latest.properties.version] is True
    (done,) = [r for r in runs() if r["data"]["secret"] == seeded.secret]
    assert done["status"] == "succeeded" and done["data"]["retired"] == [seeded.version]


def test_both_is_for_dual_key_strategies(
    world: RotationWorld, unique_name: str, operator: None,
) -> None:
    world.client.set_secret(f"{unique_name}-db", "Initial-Password-0123456789")
    world.rule(f"{unique_name}-db", "generated", hook="anything")
    world.write_policy()
    answer = rotate(VAULT, f"{unique_name}-db", both=True, reason="leak")
    assert answer.status == 400 and answer.body["field"] == "both"


# ------------------------------------------------------------------ 9.3 paging


def test_rotations_are_paged_and_filtered(world: RotationWorld, operator: None) -> None:
    from pitcrew.bootstrap import get_services
    from pitcrew.rotation.engine import RUN_KIND, run_id_for
    from pitcrew.state import RunRecord

    state = get_services().state
    expected = set()
    for vault in ("a-kv", "b-kv"):
        for secret in ("alpha", "beta", "alphabet"):
            for version in ("v1", "v2"):
                run_id = run_id_for(vault, secret, version)
                expected.add(run_id)
                state.create_run(RunRecord(
                    kind=RUN_KIND, run_id=run_id, step="done",
                    status="succeeded" if version == "v1" else "failed",
                    data={"vault": vault, "secret": secret, "trigger_version": version,
                          "strategy": "cosmos-keys"}))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = {"limit": "5", **({"continuation": token} if token else {})}
        page = rotation_api.list_rotations(READER, query)
        assert page.status == 200, page.body
        assert len(page.body["rotations"]) <= 5
        seen += [r["id"] for r in page.body["rotations"]]
        pages += 1
        token = page.body["continuation"]
        if not token:
            break
    assert sorted(seen) == sorted(expected) and pages == 3

    def ids(query: dict[str, str]) -> set[str]:
        answer = rotation_api.list_rotations(READER, query)
        assert answer.status == 200, answer.body
        return {r["id"] for r in answer.body["rotations"]}

    assert ids({"secret": "a-kv/alpha"}) == {"a-kv/alpha@v1", "a-kv/alpha@v2"}
    assert ids({"secret": "alpha"}) == {"a-kv/alpha@v1", "a-kv/alpha@v2",
                                        "b-kv/alpha@v1", "b-kv/alpha@v2"}
    assert ids({"secret": "B-KV/Beta", "status": "failed"}) == {"b-kv/beta@v2"}
    one = rotation_api.list_rotations(READER, {"secret": "alpha", "limit": "1"})
    assert len(one.body["rotations"]) == 1 and one.body["continuation"]
    for bad in ({"limit": "0"}, {"continuation": "%%%"}, {"status": "done"},
                {"secret": "a/b/c"}):
        answer = rotation_api.list_rotations(READER, bad)
        assert answer.status == 400, (bad, answer.body)
    assert rotation_api.list_rotations({}, {}).status == 401


# ------------------------------------------------------------------ versions in upper case


@pytest.mark.parametrize("via", ["event", "engine"])
def test_a_version_named_in_upper_case_rotates_once(
    world: RotationWorld, unique_name: str, receiver: Receiver, via: str,
) -> None:
    """Key Vault names versions in lower-case hex. Before: an event (or a caller of the engine)
    naming the version in upper case ended `skipped` ("no longer the latest"), untold."""
    from pitcrew.bootstrap import get_services

    seeded = world.seed_dual("cosmos-keys", unique_name)
    shouted = seeded.version.upper()
    if via == "event":
        result = deliver(event_body(VAULT, seeded.secret, shouted))
        assert outcome(result) == "handled", result.body
        assert "succeeded" in result.body["events"][0]["detail"], result.body
    else:
        run = RotationEngine(get_services()).start(
            VAULT, seeded.secret, shouted, actor="test", correlation_id="c", reason="test")
        assert run.status == "succeeded", run.data.get("outcome")
        assert run.data["trigger_version"] == seeded.version
    # Twice: the same version again, in either case, is the same run and changes nothing.
    for version in (seeded.version, shouted):
        again = deliver(event_body(VAULT, seeded.secret, version))
        assert outcome(again) == "handled", again.body
    assert world.local.regenerations(seeded.resource) == {"secondaryMasterKey": 1}
    (run_row,) = [r for r in runs() if r["data"]["secret"] == seeded.secret]
    assert run_row["status"] == "succeeded"
    assert [m["severity"] for m in receiver.received] == ["info"]


class StaleLatest:
    """A secret store whose `latest` names another version while `stale` is set: how a run
    came to be skipped though its version was the latest (a version compared in the wrong
    case, before the fix)."""

    def __init__(self, real: Any, secret: str) -> None:
        self.real = real
        self.secret = secret
        self.stale = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def latest(self, vault: str, name: str) -> Any:
        from dataclasses import replace

        current = self.real.latest(vault, name)
        if self.stale and name == self.secret and current is not None:
            return replace(current, version="f" * 32)
        return current


def test_a_run_skipped_while_its_version_is_the_latest_goes_on_when_asked_again(
    world: RotationWorld, unique_name: str, receiver: Receiver, operator: None,
) -> None:
    """Before: a run ended `skipped` is final, so every later event and `pitcrew rotate` of
    that version were `skipped` too, and nobody was told. A skipped run whose version is the
    latest is started again; one whose version is really superseded stays skipped."""
    from dataclasses import replace

    from pitcrew.bootstrap import get_services

    seeded = world.seed_dual("cosmos-keys", unique_name)
    services = get_services()
    store = StaleLatest(services.rotation.secrets, seeded.secret)
    engine = RotationEngine(services, replace(services.rotation, secrets=store))
    skipped = engine.start(VAULT, seeded.secret, seeded.version, actor="test",
                           correlation_id="c", reason="test")
    assert skipped.status == "skipped" and world.local.regenerations(seeded.resource) == {}

    result = deliver(event_body(VAULT, seeded.secret, seeded.version))
    assert outcome(result) == "handled", result.body
    assert "succeeded" in result.body["events"][0]["detail"], result.body
    assert world.latest(seeded.secret).properties.version != seeded.version
    assert "rotation.retried" in [r["action"] for r in audit_records()]
    # Twice: the version is superseded now, so the run stays as it ended and the operator's
    # rotate is a new run of the new version (waiting out the grace period).
    assert outcome(deliver(event_body(VAULT, seeded.secret, seeded.version))) == "handled"
    waiting = rotate(VAULT, seeded.secret)
    assert waiting.status == 202 and waiting.body["run"]["status"] == "waiting", waiting.body
    assert world.local.regenerations(seeded.resource) == {"secondaryMasterKey": 1}
    old = [r for r in runs() if r["data"]["trigger_version"] == seeded.version]
    assert [r["status"] for r in old] == ["succeeded"]
    assert [m["severity"] for m in receiver.received] == ["info"]


# ------------------------------------------------------------------ resuming a failed run


def test_a_run_failed_after_promotion_is_resumed_where_it_failed(
    world: RotationWorld, unique_name: str, receiver: Receiver, operator: None,
) -> None:
    """A consumer site's refresh fails after the new version was promoted. Before: the alert
    said the old version "was not changed", and `pitcrew rotate` (the action it offered)
    started a new run of the new version, waiting out the grace period, so the site was never
    refreshed. Now the alert says what was promoted and who was not told, and `pitcrew rotate`
    resumes the failed run at its step: once while the cause remains, once fixed."""
    from tests.integration.test_consumers_refresh import site_id

    present, gone = site_id(f"{unique_name}-api"), site_id(f"{unique_name}-gone")
    world.local.add_resource(present)
    seeded = world.seed_dual("cosmos-keys", unique_name,
                             consumers=[{"site": present}, {"site": gone}])
    world.write_policy(max_attempts=1)
    assert outcome(deliver(event_body(VAULT, seeded.secret, seeded.version))) == "handled"
    new_version = world.latest(seeded.secret).properties.version
    assert new_version != seeded.version
    (run,) = [r for r in runs() if r["data"]["secret"] == seeded.secret]
    assert (run["status"], run["data"]["failed_step"]) == ("failed", "refresh")
    assert run["data"]["new_version"] == new_version
    (alert,) = receiver.received
    assert "was not changed" not in alert["summary"]
    assert f"Version {new_version} was promoted" in alert["summary"]
    assert f"site(s) {gone} were not refreshed" in alert["summary"]
    assert "resumes this run at step refresh" in alert["summary"]

    # Resumed while the site is still missing: the same run fails again at the same step.
    again = rotate(VAULT, seeded.secret)
    assert again.body["run"]["id"] == run["run_id"], again.body
    assert again.body["run"]["status"] == "failed", again.body
    # Each attempt that fails is told: the second failure is not taken for the first's repeat.
    told = [n for n in receiver.received if "resumes this run at step refresh" in n["summary"]]
    assert len(told) == 2, [n["summary"] for n in receiver.received]

    world.local.add_resource(gone)  # the cause is fixed
    planned = rotate(VAULT, seeded.secret, dry_run=True)
    assert planned.body["plan"]["steps"] == [
        f"resume run {run['run_id']} at step refresh, where it failed after promoting version "
        f"{new_version}"], planned.body
    resumed = rotate(VAULT, seeded.secret)
    assert resumed.status == 200, resumed.body
    assert resumed.body["run"]["id"] == run["run_id"]
    assert resumed.body["run"]["status"] == "succeeded", resumed.body
    assert [world.local.reference_refreshes(s) for s in (present, gone)] == [1, 1]
    assert world.latest(seeded.secret).properties.version == new_version
    assert world.local.regenerations(seeded.resource) == {"secondaryMasterKey": 1}
    retried = [r for r in audit_records() if r["action"] == "rotation.retried"]
    assert len(retried) == 2 and all(r["details"]["resumedAt"] == "refresh" for r in retried)
    assert receiver.received[-1]["severity"] == "info"

    # And once done, `pitcrew rotate` is a new rotation of the new version, as ever.
    waiting = rotate(VAULT, seeded.secret)
    assert waiting.status == 202 and waiting.body["run"]["id"] != run["run_id"], waiting.body
    assert [world.local.reference_refreshes(s) for s in (present, gone)] == [1, 1]
