"""A version pitcrew writes is the same secret to its readers: it keeps the current version's
content type and user tags (the expiry sweep's hygiene checks both), within Key Vault's limits
of 15 tags and 256-character values, and a promote never fails for its tags.

Before: every rotated version had `content_type None` and only `pitcrew-*` tags, so the next
sweep reported `no content type; no owner tag`; and a resource id over 256 characters in the
pitcrew-resource tag made Key Vault answer 400 after the key was already regenerated."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pitcrew.rotation.hooks import register_hook, unregister_hook
from tests.integration.rotation_support import (
    SLOTS,
    VAULT,
    RotationWorld,
    deliver,
    event_body,
    new_key,
    outcome,
    resource_id,
    runs,
)
from tests.integration.test_rotation_faults import FakeLogin

INITIAL = "Initial-Password-0123456789-abcdef"
USER_TAGS = {"owner": "team-orders", "cost-center": "4711", "ProviderAddressNote": "x" * 256}
CONTENT_TYPE = "text/plain"
MAX_TAGS = 15  # Key Vault's limit on a secret version's tags


def rotate_latest(world: RotationWorld, secret: str) -> str:
    """Deliver a NearExpiry event about the latest version; the version it promoted."""
    before = world.latest(secret).properties.version
    result = deliver(event_body(VAULT, secret, before))
    assert outcome(result) == "handled", result.body
    assert "succeeded" in result.body["events"][0]["detail"], result.body
    latest = world.latest(secret).properties
    assert latest.version != before
    return str(latest.version)


def assert_content_type(content_type: str | None) -> None:
    # The store reads it into SecretVersion.content_type (pitcrew/azure/keyvault.py).
    assert content_type == CONTENT_TYPE, "the content type was dropped"


def assert_carried(world: RotationWorld, secret: str, user_tags: dict[str, str]) -> None:
    props = world.latest(secret).properties
    tags = dict(props.tags or {})
    assert {k: tags.get(k) for k in user_tags} == user_tags, "user tags were dropped"
    assert tags["pitcrew-run"] and tags["pitcrew-rotated-at"] and tags["pitcrew-strategy"]
    assert len(tags) <= MAX_TAGS
    assert_content_type(props.content_type)


@pytest.fixture
def generated(world: RotationWorld, unique_name: str) -> Iterator[tuple[FakeLogin, str]]:
    secret = f"{unique_name}-db"
    world.client.set_secret(secret, INITIAL, content_type=CONTENT_TYPE, tags=USER_TAGS,
                            expires_on=datetime.now(UTC) + timedelta(days=10))
    fake = FakeLogin(INITIAL)
    hook = f"login-{unique_name}"
    register_hook(hook, fake)
    world.rule(secret, "generated", hook=hook, target="sql://orders/app")
    world.write_policy(grace_hours=0)
    yield fake, secret
    unregister_hook(hook)


def test_a_generated_secret_keeps_its_content_type_and_user_tags(
    world: RotationWorld, generated: tuple[FakeLogin, str],
) -> None:
    fake, secret = generated
    for _ in range(2):
        rotate_latest(world, secret)
        assert world.latest(secret).value == fake.password
        assert_carried(world, secret, USER_TAGS)
        tags = world.latest(secret).properties.tags
        assert tags["pitcrew-hook"] and tags["pitcrew-target"] == "sql://orders/app"
    # The pending secret held the same credential: it said the same about it.
    pending = world.versions(f"{secret}-pitcrew-pending")
    assert len(pending) == 2
    for version in pending:
        assert (version.tags or {}).get("owner") == "team-orders"
        assert (version.tags or {}).get("pitcrew-pending-for") == secret
        assert_content_type(version.content_type)


@pytest.mark.parametrize("strategy", ["cosmos-keys", "storage-keys"])
def test_a_dual_key_secret_keeps_its_content_type_and_user_tags(
    world: RotationWorld, unique_name: str, strategy: str,
) -> None:
    seeded = world.seed_dual(strategy, unique_name)
    world.write_policy(grace_hours=0)
    world.client.update_secret_properties(
        seeded.secret, seeded.version, content_type=CONTENT_TYPE,
        tags={**USER_TAGS, "pitcrew-key": "primary", "pitcrew-resource": seeded.resource})
    first = rotate_latest(world, seeded.secret)
    assert_carried(world, seeded.secret, USER_TAGS)
    assert world.latest(seeded.secret).properties.tags["pitcrew-key"] == "secondary"
    second = rotate_latest(world, seeded.secret)
    assert second != first
    assert_carried(world, seeded.secret, USER_TAGS)
    props = world.latest(seeded.secret).properties
    assert props.tags["pitcrew-key"] == "primary"
    assert world.latest(seeded.secret).value == world.keys(seeded)[SLOTS[strategy][0]]
    assert world.local.regenerations(seeded.resource) == {slot: 1 for slot in SLOTS[strategy]}


def test_a_dual_key_secret_keeps_the_azure_sample_tags_and_user_tags(
    world: RotationWorld, unique_name: str,
) -> None:
    """ProviderAddress/CredentialId/ValidityPeriodDays are carried as before (CredentialId names
    the new key), next to the user's tags."""
    seeded = world.seed_dual("storage-keys", unique_name, tag_key=False)
    world.write_policy(grace_hours=0)
    world.client.update_secret_properties(
        seeded.secret, seeded.version, content_type=CONTENT_TYPE,
        tags={"owner": "team-orders", "ProviderAddress": seeded.resource,
              "CredentialId": "key1", "ValidityPeriodDays": "60"})
    rotate_latest(world, seeded.secret)
    assert_carried(world, seeded.secret, {"owner": "team-orders", "ValidityPeriodDays": "60",
                                          "ProviderAddress": seeded.resource})
    assert world.latest(seeded.secret).properties.tags["CredentialId"] == "key2"


def test_user_tags_beyond_key_vaults_limit_are_dropped_not_the_promote(
    world: RotationWorld, generated: tuple[FakeLogin, str], caplog: pytest.LogCaptureFixture,
) -> None:
    """15 user tags, the owner tag listed last: pitcrew's own tags and the owner tag are kept,
    as many others as fit, and the log names the ones dropped."""
    caplog.set_level(logging.WARNING)
    fake, secret = generated
    many = {f"team-tag-{i:02d}": f"value-{i}" for i in range(14)} | {"owner": "team-orders"}
    world.client.set_secret(secret, INITIAL, content_type=CONTENT_TYPE, tags=many)
    rotate_latest(world, secret)
    props = world.latest(secret).properties
    tags = dict(props.tags or {})
    assert len(tags) == MAX_TAGS
    assert tags["owner"] == "team-orders", "the hygiene owner tag is kept first"
    own = [name for name in tags if name.startswith("pitcrew-")]
    assert len(own) == 7  # strategy, valid-from, valid-until, rotated-at, run, hook, target
    kept = [name for name in many if name in tags]
    dropped = [name for name in many if name not in tags]
    assert len(kept) == MAX_TAGS - len(own) and dropped
    assert kept[:-1] == list(many)[:len(kept) - 1], "the first user tags listed are kept"
    (run,) = [r for r in runs() if r["data"]["secret"] == secret]
    assert run["data"]["tags_dropped"] == dropped
    assert all(name in caplog.text for name in dropped)
    assert "were not carried over" in caplog.text
    assert world.latest(secret).value == fake.password
    assert_content_type(props.content_type)


def test_a_resource_id_over_256_characters_never_breaks_promote(
    world: RotationWorld, unique_name: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Refused by `policy validate` (tests/unit/test_rotation.py); and were one to reach a run
    (a target built in code), the promote leaves the tag off instead of Key Vault's 400
    after the key was regenerated."""
    from pitcrew.bootstrap import get_services
    from pitcrew.rotation.engine import RotationEngine
    from pitcrew.rotation.tags import Target

    caplog.set_level(logging.WARNING)
    rid = resource_id("servicebus-keys", f"{unique_name}").replace(
        "/queues/orders/", f"/queues/{'orders-' * 40}q/")
    assert len(rid) > 256
    keys = {"primaryKey": new_key(32), "secondaryKey": new_key(32)}
    world.local.add_resource(rid, keys)
    secret = f"{unique_name}-sb"
    written = world.client.set_secret(secret, keys["primaryKey"], content_type=CONTENT_TYPE,
                                      tags={"owner": "team-orders"})
    world.write_policy(grace_hours=0)
    engine = RotationEngine(get_services())
    run = engine.start(VAULT, secret, written.properties.version, actor="test",
                       correlation_id="long-id", reason="test",
                       target=Target(strategy="servicebus-keys", source="policy", resource=rid))
    assert run.status == "succeeded", run.data.get("outcome")
    assert run.data["tags_omitted"] == ["pitcrew-resource"]
    props = world.latest(secret).properties
    assert "pitcrew-resource" not in (props.tags or {})
    assert props.tags["owner"] == "team-orders"
    assert world.latest(secret).value == world.local.keys(rid)["secondaryKey"]
    assert "pitcrew-resource" in caplog.text and "over 256 characters" in caplog.text
    assert_content_type(props.content_type)
