"""Who owns a secret is one function, `pitcrew.rotation.tags.owner`: a policy rule first, then
the secret's tags; Key Vault is read only when tags may decide."""

from __future__ import annotations

import pytest

from pitcrew.errors import InvalidInput
from pitcrew.rotation.policy import RotationPolicy
from pitcrew.rotation.ports import SecretVersion
from pitcrew.rotation.tags import Target, owner

COSMOS = ("/subscriptions/s/resourceGroups/g/providers/Microsoft.DocumentDB/"
          "databaseAccounts/orders")
STORAGE = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/st1"


class Vault:
    """Stands for Key Vault (beyond the process): one version per secret, reads counted."""

    def __init__(self, versions: dict[str, SecretVersion]) -> None:
        self.versions = versions
        self.reads: list[str] = []

    def latest(self, vault: str, name: str) -> SecretVersion | None:
        self.reads.append(f"{vault}/{name}")
        return self.versions.get(name)


def _policy(use_tags: bool = False) -> RotationPolicy:
    return RotationPolicy.model_validate({"use_tags": use_tags, "secrets": [
        {"vault": "kv", "secret": "db-*", "strategy": "cosmos-keys", "resource": COSMOS},
        {"vault": "kv", "secret": "sample-*", "use_tags": True},
    ]})


def test_a_rule_decides_without_reading_the_vault() -> None:
    vault = Vault({})
    target = owner(_policy(), vault, "KV", "db-main")
    assert target == Target(strategy="cosmos-keys", source="policy", resource=COSMOS)
    assert owner(_policy(), vault, "kv", "loose") is None
    assert owner(_policy(use_tags=True), vault, "kv", "db-main-pitcrew-pending") is None
    assert vault.reads == []


def test_tags_decide_from_the_current_version_read_once() -> None:
    vault = Vault({
        "sample-key": SecretVersion("sample-key", "v1", None, tags={
            "ProviderAddress": STORAGE, "CredentialId": "key1", "ValidityPeriodDays": "30"}),
        "tagged": SecretVersion("tagged", "v1", None, tags={"pitcrew-strategy": "notify"}),
        "bad": SecretVersion("bad", "v1", None, tags={"ProviderAddress": "nope"}),
    })
    target = owner(_policy(), vault, "kv", "sample-key")
    assert target is not None and (target.strategy, target.source, target.resource,
                                   target.validity_days) == ("storage-keys", "tags", STORAGE, 30)
    assert owner(_policy(use_tags=True), vault, "kv", "tagged") == Target("notify", "tags")
    assert owner(_policy(use_tags=False), vault, "kv", "tagged") is None
    with pytest.raises(InvalidInput) as bad:
        owner(_policy(use_tags=True), vault, "kv", "bad")
    assert bad.value.field == "ProviderAddress"
    assert vault.reads == ["kv/sample-key", "kv/tagged", "kv/bad"]
