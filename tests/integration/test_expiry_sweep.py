"""The expiry sweep finds what events miss, rotates what a rule owns exactly once (an event
arriving during the sweep included), and reports the rest in one notification per vault.

Everything runs through the production adapters against the local Azure endpoint (Key Vault
secrets, keys, certificates; ARM keys) and Azurite (claims, runs, findings, audit, outbox)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.keyvault.keys import KeyClient

from pitcrew.auth import encode_principal
from pitcrew.housekeeping import api
from pitcrew.housekeeping.expiry import Sweeper
from pitcrew_dev.azure_endpoint import LocalAzure, LocalCredential, start_local_azure
from tests.integration.rotation_support import (
    SUB,
    VAULT,
    RotationWorld,
    audit_records,
    deliver,
    deny_vault,
    event_body,
    outcome,
    runs,
)
from tests.receiver import Receiver

NOW = int(time.time())
DAY = 86400
OTHER = "rot-kv-two"
ROTATOR = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Rotator"])}
READER = {"X-MS-CLIENT-PRINCIPAL": encode_principal("eve@example.com", ["Reader"])}


@pytest.fixture(scope="module")
def local_azure() -> Iterator[LocalAzure]:
    config: dict[str, Any] = {
        "vaults": [VAULT, OTHER],
        "secrets": {OTHER: {"other-no-expiry": {"value": "v"}}},
        "keys": {VAULT: {
            "signing": {"exp": NOW + 2 * DAY},  # near expiry, a rule rotates it
            "racing": {"exp": NOW + 2 * DAY},   # near expiry, event and sweep race
            "orphan-key": {"exp": NOW + 2 * DAY},  # near expiry, no rule
        }},
        "certificates": {VAULT: {
            # self-signed, auto-renew at 80% was due long ago and did not happen
            "edge-self": {"issuer": "Self", "created": NOW - 330 * DAY, "exp": NOW + 5 * DAY},
            # self-signed, auto-renew missed: its CertificateNearExpiry event renews it
            "event-self": {"issuer": "Self", "created": NOW - 330 * DAY, "exp": NOW + 40 * DAY},
            # a CA outside Key Vault: a person renews it
            "edge-ext": {"issuer": "Unknown", "created": NOW - 330 * DAY, "exp": NOW + 5 * DAY,
                         "tags": {"owner": "team-edge"}},
        }},
    }
    with start_local_azure(config=config) as endpoint:
        yield endpoint


EXPIRY = f"""
expiry:
  vaults: [{VAULT}, {OTHER}]
  window_days: 30
  hygiene:
    retention_days: 30
  renewal_wait_seconds: 5
  renewal_poll_seconds: 0.05
  keys:
    - vault: {VAULT}
      key: signing
      pinned_consumers: [payments-api]
#more-keys
  certificates:
    - vault: {VAULT}
      certificate: "edge-*"
      renew_at_percent: 80
"""


def configure(world: RotationWorld, extra: str = EXPIRY, *, mode: str = "act") -> None:
    world.write_policy(mode=mode)
    with open(world.policy_path, "a", encoding="utf-8") as policy:
        policy.write(extra)
    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import reset_runtime

    reset_runtime()
    reset_services()


def set_expiry(world: RotationWorld, secret: str, expires: datetime | None) -> None:
    props = world.client.get_secret(secret).properties
    world.client.update_secret_properties(secret, props.version, expires_on=expires)


def sweep(**kwargs: Any) -> Any:
    from pitcrew.bootstrap import get_services

    return Sweeper(get_services(), **kwargs).run()


def findings(**query: str) -> list[dict[str, Any]]:
    result = api.list_expiry(READER, {"limit": "1000", **query})
    assert result.status == 200, result.body
    return list(result.body["objects"])


def summaries(receiver: Receiver) -> list[dict[str, Any]]:
    return [n for n in receiver.received if str(n["id"]).startswith("expiry-sweep:")]


@pytest.fixture(autouse=True)
def _operator_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")


def test_the_sweep_finds_what_events_miss_and_acts_once(
        world: RotationWorld, local_azure: LocalAzure, receiver: Receiver) -> None:
    # A secret a rule owns, expiring tomorrow: its NearExpiry event never came.
    owned = world.seed_dual("cosmos-keys", "sweepcosmos")
    set_expiry(world, owned.secret, datetime.now(UTC) + timedelta(days=1))
    world.client.set_secret("no-expiry-secret", "v", content_type="text/plain",
                            tags={"owner": "team-a"})
    world.client.set_secret("orphan-expiring", "v", expires_on=datetime.now(UTC)
                            + timedelta(days=3))
    configure(world)

    report = sweep()
    by_name = {f["name"]: f for f in findings()}
    # The secret rotated through the engine: one regeneration, one run.
    assert local_azure.regenerations(owned.resource) == {"secondaryMasterKey": 1}
    assert by_name[owned.secret]["class"] == "expiring"
    assert by_name[owned.secret]["owner"] == "rotation:cosmos-keys"
    assert "rotation succeeded" in by_name[owned.secret]["action"]
    assert by_name["no-expiry-secret"]["class"] == "no-expiry"
    assert by_name["orphan-expiring"]["class"] == "expiring"
    assert "needs a person" in by_name["orphan-expiring"]["action"]
    assert "no content type" in by_name["orphan-expiring"]["problems"]
    assert "no owner tag" in by_name["orphan-expiring"]["problems"]
    # The key near expiry: Key Vault's own rotate operation, once; pinned consumers told.
    assert local_azure.vault_operations(VAULT)["keys"]["signing"] == 1
    assert "rotated by Key Vault's rotate operation" in by_name["signing"]["action"]
    assert "needs a person" in by_name["orphan-key"]["action"]
    pinned = [n for n in receiver.received if str(n["id"]).startswith("key-rotated:")]
    assert len(pinned) == 1 and "payments-api" in pinned[0]["summary"]
    # The self-signed certificate whose auto-renew was missed: renewed once.
    assert local_azure.vault_operations(VAULT)["certificates"]["edge-self"] == 1
    assert by_name["edge-self"]["action"].startswith("renewed:")
    # The external issuer's certificate: the owner and the exact action.
    assert "team-edge" in by_name["edge-ext"]["action"]
    assert local_azure.vault_operations(VAULT)["certificates"]["edge-ext"] == 0
    # One notification per vault.
    assert sorted(s["facts"]["Vault"] for s in summaries(receiver)) == [VAULT, OTHER]
    assert [v.notified for v in report.vaults] == ["delivered", "delivered"]
    assert {f["name"] for f in findings(vault=OTHER)} == {"other-no-expiry"}

    # Sweeping again (and again) acts on nothing twice.
    sweep()
    sweep()
    assert local_azure.regenerations(owned.resource) == {"secondaryMasterKey": 1}
    ops = local_azure.vault_operations(VAULT)
    assert ops["keys"]["signing"] == 1 and ops["certificates"]["edge-self"] == 1
    assert len([r for r in runs() if r["data"]["secret"] == owned.secret]) == 1


def test_an_event_during_the_sweep_rotates_once(
        world: RotationWorld, local_azure: LocalAzure) -> None:
    owned = world.seed_dual("cosmos-keys", "racecosmos")
    set_expiry(world, owned.secret, datetime.now(UTC) + timedelta(days=1))
    version = world.client.get_secret(owned.secret).properties.version
    configure(world, EXPIRY.replace("window_days: 30", "window_days: 3").replace(
        "#more-keys", f"    - vault: {VAULT}\n      key: racing"))
    keys = KeyClient(local_azure.vault_url(VAULT), LocalCredential("t"),
                     **local_azure.keyvault_client_kwargs())
    key_version = keys.get_key("racing").properties.version
    start = threading.Barrier(3)
    outcomes: list[str] = []

    def deliver_until_done(body: bytes) -> None:
        start.wait()
        for _ in range(200):
            result = outcome(deliver(body))
            if result != "retry":
                outcomes.append(result)
                return
            time.sleep(0.05)

    secret_event = event_body(VAULT, owned.secret, version)
    key_event = _key_event("racing", key_version)
    threads = [threading.Thread(target=deliver_until_done, args=(secret_event,)),
               threading.Thread(target=deliver_until_done, args=(key_event,))]
    for thread in threads:
        thread.start()
    start.wait()
    sweep()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["handled", "handled"]
    assert local_azure.regenerations(owned.resource) == {"secondaryMasterKey": 1}
    assert local_azure.vault_operations(VAULT)["keys"]["racing"] == 1
    assert len([r for r in runs() if r["data"]["secret"] == owned.secret]) == 1


def _key_event(key: str, version: str) -> bytes:
    return json.dumps([{
        "id": f"evt-key-{version[:8]}",
        "topic": f"/subscriptions/{SUB}/resourceGroups/rot-rg/providers/Microsoft.KeyVault/"
                 f"vaults/{VAULT}",
        "subject": key, "eventType": "Microsoft.KeyVault.KeyNearExpiry",
        "eventTime": datetime.now(UTC).isoformat(),
        "data": {"Id": f"https://{VAULT}.vault.azure.net/keys/{key}/{version}",
                 "VaultName": VAULT, "ObjectType": "Key", "ObjectName": key,
                 "Version": version, "NBF": None, "EXP": NOW + 2 * DAY},
        "dataVersion": "1", "metadataVersion": "1"}]).encode()


def test_plan_changes_nothing_and_fix_applies_key_policies(
        world: RotationWorld, local_azure: LocalAzure, receiver: Receiver) -> None:
    configure(world)
    keys = KeyClient(local_azure.vault_url(VAULT), LocalCredential("t"),
                     **local_azure.keyvault_client_kwargs())
    keys.create_rsa_key("planned-key", expires_on=datetime.now(UTC) + timedelta(days=200))
    configure(world, EXPIRY.replace("#more-keys", f"    - vault: {VAULT}\n      key: planned-key"))
    before = local_azure.vault_operations(VAULT)
    result = api.request_sweep(ROTATOR, b'{"dry_run": true}')
    assert result.status == 200 and result.body["plan"] is True
    assert local_azure.vault_operations(VAULT) == before
    for swept in result.body["vaults"]:  # bounded, and says how many need attention
        assert len(swept["attention"]) == min(swept["attentionCount"], 100)
    planned = {f["name"]: f for f in findings(kind="key")}["planned-key"]
    assert any("expiryTime is unset" in p for p in planned["problems"])
    assert keys.get_key_rotation_policy("planned-key").expires_in is None
    # --fix applies pitcrew.yaml's rotation policy; the next sweep finds nothing to change.
    assert api.request_sweep(ROTATOR, b'{"fix": true}').status == 200
    assert keys.get_key_rotation_policy("planned-key").expires_in == "P90D"
    api.request_sweep(ROTATOR, b"{}")
    assert {f["name"]: f for f in findings(kind="key")}["planned-key"]["problems"] == []


def test_hygiene_disables_old_enabled_versions_plan_first(
        world: RotationWorld, local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("one", "two", "three"):
        world.client.set_secret("rotated-often", value, tags={"pitcrew-rotated-at": "x"},
                                expires_on=datetime.now(UTC) + timedelta(days=300))
    configure(world, EXPIRY.replace("retention_days: 30", "retention_days: 0.00001"))
    time.sleep(1.1)
    sweep()
    versions = list(world.client.list_properties_of_secret_versions("rotated-often"))
    assert all(v.enabled for v in versions)  # plan first
    row = {f["name"]: f for f in findings(kind="secret")}["rotated-often"]
    assert any("superseded version(s)" in p for p in row["problems"])
    sweep(fix=True)
    enabled = [v for v in world.client.list_properties_of_secret_versions("rotated-often")
               if v.enabled]
    assert len(enabled) == 1
    assert enabled[0].version == world.client.get_secret("rotated-often").properties.version


def test_list_expiry_pages_filters_and_refuses_bad_input(world: RotationWorld) -> None:
    configure(world)
    for i in range(3):
        world.client.set_secret(f"page-{i}", "v")
    sweep()
    first = api.list_expiry(READER, {"limit": "2", "class": "no-expiry"})
    assert first.status == 200 and len(first.body["objects"]) == 2
    assert all(o["class"] == "no-expiry" for o in first.body["objects"])
    second = api.list_expiry(READER, {"limit": "1000", "class": "no-expiry",
                                      "continuation": first.body["continuation"]})
    assert second.status == 200
    for query, field in (({"class": "bogus"}, "class"), ({"kind": "blob"}, "kind"),
                         ({"vault": "a/b"}, "vault"), ({"limit": "0"}, "limit"),
                         ({"continuation": "!!"}, "continuation")):
        answer = api.list_expiry(READER, query)
        assert answer.status == 400 and answer.body["field"] == field, query
    assert api.list_expiry({}, {}).status == 401
    assert api.request_sweep(READER, b"{}").status == 403
    bad = api.request_sweep(ROTATOR, b'{"vault": "other-kv"}')
    assert bad.status == 400 and bad.body["field"] == "vault"
    assert api.request_sweep(ROTATOR, b'{"fix": "yes"}').body["field"] == "fix"


@pytest.fixture
def host_url(world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import os

    import function_app
    from pitcrew_dev.host import build_host, serving

    configure(world)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "")  # build_host turns it on; restored after
    local = build_host(function_app.app, function_key="k", allow_dev_principal=True,
                       settings=os.environ)
    with serving(local) as url:
        yield url


def test_the_cli_sweeps_and_lists(world: RotationWorld, host_url: str) -> None:
    import io

    from rich.console import Console
    from typer.testing import CliRunner

    from pitcrew.cli.expiry import findings_table
    from pitcrew.cli.main import app

    world.client.set_secret("cli-no-expiry", "v")
    env = {"PITCREW_URL": host_url, "PITCREW_DEV_PRINCIPAL": "ops@localhost:Rotator",
           "COLUMNS": "80"}
    swept = CliRunner().invoke(app, ["expiry", "sweep", "--dry-run", "--json"], env=env)
    assert swept.exit_code == 0, swept.stdout
    assert json.loads(swept.stdout)["plan"] is True
    listed = CliRunner().invoke(app, ["expiry", "--class", "no-expiry", "--json"], env=env)
    assert listed.exit_code == 0, listed.stdout
    assert "cli-no-expiry" in {o["name"] for o in json.loads(listed.stdout)["objects"]}
    table = CliRunner().invoke(app, ["expiry", "--vault", VAULT], env=env)
    assert table.exit_code == 0 and "cli-no-expiry" in table.stdout
    # The CLI's consoles take their width once, from the session's COLUMNS: the table's own
    # promise, to fit 80 columns, is checked on a console of 80.
    narrow = Console(width=80, record=True, file=io.StringIO())
    narrow.print(findings_table(json.loads(listed.stdout)["objects"]))
    assert max(len(line) for line in narrow.export_text().splitlines()) <= 80


def test_the_demo_sweep_shows_each_class(
        pitcrew_env: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `make run` + `pitcrew expiry sweep` shows: a missed expiry, a secret without expiry,
    a key rotated by Key Vault's operation and a certificate renewal, in one notification."""
    from pathlib import Path

    import yaml

    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import reset_runtime

    root = Path(__file__).resolve().parents[2]
    demo = yaml.safe_load((root / "examples" / "pitcrew.demo.yaml").read_text())
    demo.pop("receivers", None), demo.pop("route", None)  # the test's own routing
    demo["channels"] = {"hook": {"type": "webhook", "url": receiver.url}}
    demo["routes"] = [{"name": "all", "channels": ["hook"]}]
    demo["expiry"]["renewal_poll_seconds"] = 0.05
    pitcrew_env.write_text(yaml.safe_dump(demo))
    with start_local_azure(config=root / "examples" / "local-azure.demo.json") as endpoint:
        for name, value in endpoint.environment().items():
            if name.startswith("PITCREW_"):
                monkeypatch.setenv(name, value)
        reset_runtime()
        reset_services()
        report = sweep(dry_run=True)
        assert endpoint.vault_operations("sample-kv") == {
            "keys": {"payments-signing": 0}, "certificates": {"edge-tls": 0}}
        report = sweep()
        by_name = {f.name: f for f in report.vaults[0].findings}
        assert by_name["orders-db-password"].cls == "expiring"
        assert "needs a person" in by_name["orders-db-password"].action
        assert by_name["legacy-api-token"].cls == "no-expiry"
        assert "rotated by Key Vault's rotate operation" in by_name["payments-signing"].action
        assert by_name["edge-tls"].action.startswith("renewed:")
        assert endpoint.vault_operations("sample-kv") == {
            "keys": {"payments-signing": 1}, "certificates": {"edge-tls": 1}}
        # The dry run answered with its report and told no receiver; the sweep told one.
        assert len(summaries(receiver)) == 1


def _certificate_event(name: str, version: str, event_id: str) -> bytes:
    return json.dumps([{
        "id": event_id,
        "topic": f"/subscriptions/{SUB}/resourceGroups/rot-rg/providers/Microsoft.KeyVault/"
                 f"vaults/{VAULT}",
        "subject": name, "eventType": "Microsoft.KeyVault.CertificateNearExpiry",
        "eventTime": datetime.now(UTC).isoformat(),
        "data": {"Id": f"https://{VAULT}.vault.azure.net/certificates/{name}/{version}",
                 "VaultName": VAULT, "ObjectType": "Certificate", "ObjectName": name,
                 "Version": version, "NBF": None, "EXP": NOW + 5 * DAY},
        "dataVersion": "1", "metadataVersion": "1"}]).encode()


def test_certificate_events_renew_once_or_tell_the_owner(
        world: RotationWorld, local_azure: LocalAzure, receiver: Receiver) -> None:
    from azure.keyvault.certificates import CertificateClient

    configure(world, EXPIRY.replace("window_days: 30", "window_days: 45"))
    client = CertificateClient(local_azure.vault_url(VAULT), LocalCredential("t"),
                               **local_azure.keyvault_client_kwargs())
    before = local_azure.vault_operations(VAULT)["certificates"]
    version = str(client.get_certificate("event-self").properties.version)
    assert outcome(deliver(_certificate_event("event-self", version, "evt-c1"))) == "handled"
    assert outcome(deliver(_certificate_event("event-self", version, "evt-c2"))) == "handled"
    sweep()  # finds the renewed version: nothing more
    ops = local_azure.vault_operations(VAULT)["certificates"]
    assert ops["event-self"] == before["event-self"] + 1
    external = str(client.get_certificate("edge-ext").properties.version)
    assert outcome(deliver(_certificate_event("edge-ext", external, "evt-c3"))) == "handled"
    told = [n for n in receiver.received if str(n["id"]).startswith("certificate:")
            and "edge-ext" in n["title"]]
    assert len(told) == 1 and told[0]["facts"]["Owner"] == "team-edge"
    assert "pending merge" in told[0]["summary"]
    assert local_azure.vault_operations(VAULT)["certificates"]["edge-ext"] == \
        before["edge-ext"]


def test_the_timer_sweeps_once_per_interval(world: RotationWorld, receiver: Receiver) -> None:
    from pitcrew.bootstrap import get_services
    from pitcrew.housekeeping.expiry import sweep_due

    configure(world, EXPIRY.replace("window_days: 30", "window_days: 30\n  interval_hours: 24"))
    moment = datetime(2026, 12, 1, 6, tzinfo=UTC)
    first = sweep_due(get_services(), now=moment)
    assert first is not None and first.sweep_id == "timer-20261201T0000"
    # Later ticks of the same day (any instance) sweep nothing; the next day sweeps again.
    assert sweep_due(get_services(), now=moment + timedelta(hours=5)) is None
    assert sweep_due(get_services(), now=moment + timedelta(days=1)) is not None
    ids = {s["id"] for s in summaries(receiver)}
    assert {f"expiry-sweep:timer-20261201T0000:{VAULT}",
            f"expiry-sweep:timer-20261202T0000:{VAULT}"} <= ids


def test_keys_and_certificates_read_through_one_store_shape_and_name_their_role(
    world: RotationWorld, local_azure: LocalAzure
) -> None:
    """The key and certificate stores: the latest version (None when absent), and a vault that
    refuses pitcrew names the role each needs."""
    from pitcrew.bootstrap import housekeeping_ports
    from pitcrew.rotation.ports import VaultUnavailable
    from pitcrew.runtime import get_runtime
    from tests.integration.rotation_support import deny_vault

    configure(world)
    ports = housekeeping_ports(get_runtime())
    assert ports.keys.latest_version(VAULT, "no-such-key") is None
    assert ports.certificates.latest_version(VAULT, "no-such-certificate") is None
    assert len(ports.keys.latest_version(VAULT, "orphan-key") or "") == 32
    assert "edge-ext" in {p.name for p in ports.certificates.list_properties(VAULT)}
    deny_vault(local_azure, VAULT, ["pitcrew-app"])
    try:
        for store, role, kind in (
            (ports.keys, "Key Vault Crypto Officer", "key"),
            (ports.certificates, "Key Vault Certificates Officer", "certificate"),
        ):
            with pytest.raises(VaultUnavailable) as listing:
                list(store.list_properties(VAULT))
            assert listing.value.role == role and f"list {kind} *" in listing.value.detail
            with pytest.raises(VaultUnavailable) as getting:
                store.latest_version(VAULT, "orphan-key")
            assert getting.value.role == role and f"get {kind} orphan-key" in getting.value.detail
    finally:
        deny_vault(local_azure, VAULT, [])


def test_findings_survive_concurrent_sweeps_and_a_vault_that_cannot_be_listed(
        world: RotationWorld) -> None:
    for i in range(12):
        world.client.set_secret(f"kept-{i}", "v", content_type="text/plain",
                                expires_on=datetime.now(UTC) + timedelta(days=3))
    configure(world)
    sweep()
    names = {f["name"] for f in findings(vault=VAULT)}
    assert {f"kept-{i}" for i in range(12)} <= names

    # Two sweeps at once (the timer's and an operator's): neither removes the other's rows.
    for _ in range(4):
        threads = [threading.Thread(target=sweep) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {f["name"] for f in findings(vault=VAULT)} == names

    # A vault pitcrew may no longer list keeps what it last knew, and the sweep says why.
    deny_vault(world.local, VAULT, ["pitcrew-app"])
    try:
        report = sweep()
    finally:
        deny_vault(world.local, VAULT, [])
    (denied,) = [v for v in report.vaults if v.vault == VAULT]
    assert len(denied.errors) == 3
    assert {f["name"] for f in findings(vault=VAULT)} == names

    # An object that is gone is removed by the next sweep that lists its kind in full.
    world.client.begin_delete_secret("kept-0").wait()
    sweep()
    assert {f["name"] for f in findings(vault=VAULT)} == names - {"kept-0"}


def test_a_vault_that_cannot_be_swept_is_audited_failed_though_its_summary_went_out(
        world: RotationWorld, receiver: Receiver) -> None:
    """The summary of a vault the app may no longer list is delivered; the sweep of it still
    failed, and the audit says so (the notification's fate is in the details)."""
    configure(world)
    deny_vault(world.local, VAULT, ["pitcrew-app"])
    try:
        for _ in range(2):  # and the next sweep: failed again, not `delivered`
            sweep()
        sweep(dry_run=True)  # a dry run of it is no plan either: failed, not `planned`
    finally:
        deny_vault(world.local, VAULT, [])
    records = [r for r in audit_records(VAULT) if r["action"] == "expiry.sweep"]
    assert [r["outcome"] for r in records] == ["failed", "failed", "failed"], records
    for record in records:
        assert len(record["details"]["errors"]) == 3
    for record in records[:2]:
        assert record["details"]["delivery"] == "delivered", record["details"]
    assert any("cannot sweep" in str(n.get("summary")) for n in summaries(receiver))
    others = [r for r in audit_records(OTHER) if r["action"] == "expiry.sweep"]
    assert others and all(r["outcome"] != "failed" for r in others), others

