"""Migration from Azure's Key Vault rotation samples (issue 10, item 9): secrets tagged with
ProviderAddress / CredentialId / ValidityPeriodDays rotate under pitcrew, the new version keeps
the tags (naming the new key) and expires after ValidityPeriodDays; malformed tags fail clearly,
naming the tag, never as a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pitcrew.errors import InvalidInput
from tests.integration.rotation_support import (
    SLOTS,
    VAULT,
    RotationWorld,
    deliver,
    event_body,
    new_key,
    outcome,
    resource_id,
)
from tests.receiver import Receiver


def seed_sample(world: RotationWorld, strategy: str, name: str, tags: dict[str, str],
                slot: int = 0) -> tuple[str, str, str, dict[str, str]]:
    """A secret as the Azure sample leaves it: the value of one key, the sample's tags only."""
    rid = resource_id(strategy, name)
    size = 64 if strategy in ("cosmos-keys", "storage-keys") else 32
    keys = {s: new_key(size) for s in SLOTS[strategy]}
    world.local.add_resource(rid, keys)
    secret = f"{name}-key"
    written = world.client.set_secret(
        secret, keys[SLOTS[strategy][slot]],
        tags={k: v.replace("{rid}", rid) for k, v in tags.items()},
        expires_on=datetime.now(UTC) + timedelta(days=5),
    )
    return secret, rid, str(written.properties.version), keys


def test_rule_with_use_tags_rotates_a_sample_managed_storage_secret(
    world: RotationWorld, unique_name: str
) -> None:
    secret, rid, version, keys = seed_sample(
        world, "storage-keys", unique_name,
        {"CredentialId": "key1", "ProviderAddress": "{rid}", "ValidityPeriodDays": "30"},
    )
    # No strategy, no resource: the tags name both.
    world.rules.append(f"    - vault: {VAULT}\n      secret: {secret}\n      use_tags: true\n")
    world.write_policy()

    result = deliver(event_body(VAULT, secret, version))
    assert outcome(result) == "handled" and "succeeded" in result.body["events"][0]["detail"], (
        result.body)
    latest = world.latest(secret)
    current = world.local.keys(rid)
    assert latest.value == current["key2"] != keys["key2"]
    assert current["key1"] == keys["key1"]
    assert world.local.regenerations(rid) == {"key2": 1}
    tags = latest.properties.tags
    assert tags["CredentialId"] == "key2"
    assert tags["ProviderAddress"] == rid
    assert tags["ValidityPeriodDays"] == "30"
    assert tags["pitcrew-strategy"] == "storage-keys"
    expires = latest.properties.expires_on
    assert expires is not None
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(hours=1)


def test_policy_use_tags_understands_sample_tags_without_a_rule(
    world: RotationWorld, unique_name: str
) -> None:
    world.extra = "  use_tags: true\n"
    secret, rid, version, _keys = seed_sample(
        world, "cosmos-keys", unique_name,
        {"CredentialId": "Secondary", "ProviderAddress": "{rid}", "ValidityPeriodDays": "7"},
        slot=1,
    )
    world.write_policy()
    result = deliver(event_body(VAULT, secret, version))
    assert "succeeded" in result.body["events"][0]["detail"], result.body
    latest = world.latest(secret)
    assert latest.value == world.local.keys(rid)["primaryMasterKey"]
    assert world.local.regenerations(rid) == {"primaryMasterKey": 1}
    assert latest.properties.tags["CredentialId"] == "Primary"  # the sample's own spelling
    expires = latest.properties.expires_on
    assert expires is not None
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(hours=1)


@pytest.mark.parametrize(("tag", "value"), [
    ("ProviderAddress", "not-a-resource-id"),
    ("ProviderAddress", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Sql/servers/x"),
    ("ValidityPeriodDays", "ninety"),
    ("ValidityPeriodDays", "0"),
    ("CredentialId", "key3"),
])
def test_bad_sample_tags_fail_naming_the_tag(
    world: RotationWorld, unique_name: str, receiver: Receiver, tag: str, value: str
) -> None:
    tags = {"CredentialId": "key1", "ProviderAddress": "{rid}", "ValidityPeriodDays": "30",
            tag: value}
    secret, rid, version, _ = seed_sample(world, "storage-keys", unique_name, tags)
    world.rules.append(f"    - vault: {VAULT}\n      secret: {secret}\n      use_tags: true\n")
    world.write_policy()

    from pitcrew.bootstrap import get_services
    from pitcrew.rotation.engine import RotationEngine
    from pitcrew.rotation.tags import owner

    services = get_services()
    engine = RotationEngine(services)
    with pytest.raises(InvalidInput) as bad:
        owner(services.policy.rotation, services.rotation.secrets, VAULT, secret)
    assert bad.value.field == tag
    with pytest.raises(InvalidInput):
        engine.plan(VAULT, secret)  # dry-run: a 400 naming the tag over HTTP

    # The event is handled (no 500, no retry storm): nothing regenerated, a person is told.
    result = deliver(event_body(VAULT, secret, version))
    assert result.status == 200 and outcome(result) == "handled", result.body
    assert world.local.regenerations(rid) == {}
    assert world.latest(secret).properties.version == version
    assert receiver.received, "nobody was told about the expiring secret"
