"""Rotation end to end: Key Vault event -> engine -> local Azure endpoint (Key Vault, ARM, data
plane signatures) + Azurite (claims, runs, audit, outbox) -> notification and SecretRotated.

Every test asserts on what the real peers hold afterwards: the secret's versions and tags in the
local vault, the keys and regeneration counters of the local resources, the audit trail."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from pitcrew_dev.azure_endpoint import start_local_azure
from tests.integration.rotation_support import (
    SLOTS,
    VAULT,
    RotationWorld,
    Seeded,
    assert_no_secret_values,
    audit_records,
    deliver,
    event_body,
    outcome,
    runs,
    time_travel,
)
from tests.receiver import Receiver

DUAL = ["cosmos-keys", "storage-keys", "servicebus-keys", "eventhubs-keys"]


def assert_rotated_once(world: RotationWorld, seeded: Seeded) -> None:
    """The new version holds the secondary key, only the secondary key was regenerated, once,
    and the primary key (the one in use) is untouched."""
    primary, secondary = SLOTS[seeded.strategy]
    keys = world.keys(seeded)
    latest = world.latest(seeded.secret)
    assert latest.properties.version != seeded.version
    assert latest.value == keys[secondary]
    assert keys[secondary] != seeded.initial_keys[secondary]
    assert keys[primary] == seeded.initial_keys[primary], "the key in use was regenerated"
    assert world.local.regenerations(seeded.resource) == {secondary: 1}
    tags = latest.properties.tags
    assert tags["pitcrew-key"] == "secondary"
    assert tags["pitcrew-resource"] == seeded.resource
    assert tags["pitcrew-strategy"] == seeded.strategy
    assert tags["pitcrew-valid-until"] and latest.properties.expires_on is not None


@pytest.mark.parametrize("strategy", DUAL)
def test_dual_key_rotation_end_to_end(
    world: RotationWorld, strategy: str, unique_name: str, receiver: Receiver, topic: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seeded = world.seed_dual(strategy, unique_name)
    body = event_body(VAULT, seeded.secret, seeded.version)
    result = deliver(body)
    assert outcome(result) == "handled", result.body
    assert "succeeded" in result.body["events"][0]["detail"]
    assert_rotated_once(world, seeded)
    new_version = world.latest(seeded.secret).properties.version

    # Redelivery of the same event, and a new event about the superseded version: no change.
    assert outcome(deliver(body)) == "duplicate"
    assert outcome(deliver(event_body(VAULT, seeded.secret, seeded.version))) == "handled"
    assert world.latest(seeded.secret).properties.version == new_version
    assert_rotated_once(world, seeded)

    # Consumers were told, without a value.
    (batch,) = topic.received
    (event,) = batch
    assert event["type"] == "pitcrew.SecretRotated" and event["specversion"] == "1.0"
    assert event["data"]["version"] == new_version
    assert event["data"]["previousVersion"] == seeded.version
    assert event["data"]["key"] == "secondary"

    # One notification: rotated. The audit trail shows each step.
    assert [m["kind"] for m in receiver.received] == ["rotation"]
    assert receiver.received[0]["severity"] == "info"
    actions = [r["action"] for r in audit_records(f"{VAULT}/secrets/{seeded.secret}")]
    assert actions == ["rotation.started", "rotation.prepare", "rotation.store", "rotation.test",
                       "rotation.promote", "rotation.refresh", "rotation.succeeded"]
    (run,) = [r for r in runs() if r["data"]["secret"] == seeded.secret]
    assert run["status"] == "succeeded" and run["step"] == "done"

    assert_no_secret_values(seeded.values | {world.latest(seeded.secret).value},
                            caplog.text, audit_records(), receiver.received, topic.received,
                            runs())


def test_alternates_back_after_the_grace_period(
    world: RotationWorld, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Manual rotation within the grace period waits; the timer finishes it afterwards,
    regenerating the key the previous version held (now not in use)."""
    from pitcrew.intake import api as _  # noqa: F401 - the app's modules load as in production
    from pitcrew.rotation.api import advance_rotations, request_rotation

    seeded = world.seed_dual("cosmos-keys", unique_name)
    assert outcome(deliver(event_body(VAULT, seeded.secret, seeded.version))) == "handled"
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    from pitcrew.auth import encode_principal

    headers = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Rotator"])}
    body = f'{{"vault": "{VAULT}", "secret": "{seeded.secret}"}}'.encode()
    waiting = request_rotation(headers, body)
    assert waiting.status == 202, waiting.body
    assert waiting.body["run"]["status"] == "waiting"
    assert advance_rotations()["advanced"] >= 1  # not due: stays waiting
    assert world.local.regenerations(seeded.resource) == {"secondaryMasterKey": 1}

    time_travel(monkeypatch, timedelta(hours=25))
    advance_rotations()
    keys = world.keys(seeded)
    latest = world.latest(seeded.secret)
    assert latest.value == keys["primaryMasterKey"] != seeded.initial_keys["primaryMasterKey"]
    assert latest.properties.tags["pitcrew-key"] == "primary"
    assert world.local.regenerations(seeded.resource) == {
        "secondaryMasterKey": 1, "primaryMasterKey": 1}
    manual = [r for r in audit_records() if r["actor"] == "user:ops@example.com"]
    assert manual and all(r["correlationId"].endswith(latest.properties.tags["pitcrew-run"]
                                                      .rsplit("@", 1)[-1]) for r in manual)


def test_demo_sample_rotates_the_demo_cosmos_key(
    pitcrew_env: Path, receiver: Receiver, topic: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `make run` + `pitcrew send` does: the demo seed and the demo policy's rule."""
    import yaml

    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import reset_runtime
    from tests.conftest import SAMPLES

    root = Path(__file__).resolve().parents[2]
    demo = yaml.safe_load((root / "examples" / "pitcrew.demo.yaml").read_text())
    demo.pop("receivers", None), demo.pop("route", None)  # the test's own routing
    demo["channels"] = {"hook": {"type": "webhook", "url": receiver.url}}
    demo["routes"] = [{"name": "all", "channels": ["hook"]}]
    pitcrew_env.write_text(yaml.safe_dump(demo))
    with start_local_azure(config=root / "examples" / "local-azure.demo.json") as endpoint:
        for name, value in endpoint.environment().items():
            if name.startswith("PITCREW_"):
                monkeypatch.setenv(name, value)
        monkeypatch.setenv("PITCREW_EVENTGRID_TOPIC_ENDPOINT", topic.url)
        monkeypatch.setenv("PITCREW_EVENTGRID_TOPIC_KEY", "local-topic-key")
        reset_runtime()
        reset_services()
        seed = json.loads((root / "examples" / "local-azure.demo.json").read_text())
        resource = seed["resources"][0]["id"]
        before = endpoint.keys(resource)
        body = (SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_bytes()
        assert outcome(deliver(body)) == "handled"
        assert outcome(deliver(body)) == "duplicate"
        assert endpoint.regenerations(resource) == {"secondaryMasterKey": 1}
        after = endpoint.keys(resource)
        assert after["primaryMasterKey"] == before["primaryMasterKey"]
        from azure.keyvault.secrets import SecretClient

        from pitcrew_dev.azure_endpoint import LocalCredential

        client = SecretClient(endpoint.vault_url("sample-kv"), LocalCredential("test"),
                              **endpoint.keyvault_client_kwargs())
        latest = client.get_secret("cosmos-primary-key")
        assert latest.value == after["secondaryMasterKey"]
        assert latest.properties.tags["pitcrew-key"] == "secondary"
        assert [e["type"] for batch in topic.received for e in batch] == ["pitcrew.SecretRotated"]


def test_consumer_sites_restart_once_after_promotion(
    world: RotationWorld, unique_name: str, topic: Receiver
) -> None:
    """Sites that read the secret as a Key Vault reference restart through ARM, once, after the
    new version is promoted (consumers never restart onto a credential that is not live)."""
    site = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rot-rg/providers/"
        f"Microsoft.Web/sites/{unique_name}-api"
    )
    world.local.add_resource(site)
    seeded = world.seed_dual("cosmos-keys", unique_name, restart_sites=[site])
    world.write_policy()
    body = event_body(VAULT, seeded.secret, seeded.version)
    assert outcome(deliver(body)) == "handled"
    assert_rotated_once(world, seeded)
    assert world.local.restarts(site) == 1
    assert len(topic.received) == 1
    assert outcome(deliver(body)) == "duplicate"
    assert world.local.restarts(site) == 1
