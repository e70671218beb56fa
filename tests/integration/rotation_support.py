"""Shared setup for the rotation tests: the local Azure endpoint, seeded resources and secrets,
an Event Grid topic stand-in, and the scan for leaked secret values."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pitcrew.intake import api
from pitcrew_dev.azure_endpoint import LocalAzure, LocalCredential

VAULT = "rot-kv"
SUB = "00000000-0000-0000-0000-000000000000"
RG = "rot-rg"


def resource_id(strategy: str, name: str) -> str:
    base = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
    return {
        "cosmos-keys": f"{base}/Microsoft.DocumentDB/databaseAccounts/{name}",
        "storage-keys": f"{base}/Microsoft.Storage/storageAccounts/{name}",
        "servicebus-keys": f"{base}/Microsoft.ServiceBus/namespaces/{name}/queues/orders"
        "/authorizationRules/app",
        "eventhubs-keys": f"{base}/Microsoft.EventHub/namespaces/{name}/authorizationRules/"
        "RootManageSharedAccessKey",
    }[strategy]


SLOTS = {
    "cosmos-keys": ("primaryMasterKey", "secondaryMasterKey"),
    "storage-keys": ("key1", "key2"),
    "servicebus-keys": ("primaryKey", "secondaryKey"),
    "eventhubs-keys": ("primaryKey", "secondaryKey"),
}


def new_key(size: int = 64) -> str:
    return base64.b64encode(secrets.token_bytes(size)).decode()


@dataclass
class Seeded:
    """One secret whose current version holds the primary key of one resource."""

    strategy: str
    secret: str
    resource: str
    version: str
    initial_keys: dict[str, str]
    values: set[str] = field(default_factory=set)  # every secret value the test saw


class RotationWorld:
    def __init__(self, local: LocalAzure, policy_path: Path, receiver_url: str) -> None:
        from azure.keyvault.secrets import SecretClient

        self.local = local
        self.policy_path = policy_path
        self.receiver_url = receiver_url
        self.client = SecretClient(local.vault_url(VAULT), LocalCredential("test"),
                                   **local.keyvault_client_kwargs())
        self.rules: list[str] = []
        self.extra = ""

    # --- policy ------------------------------------------------------------------------------

    def write_policy(self, *, mode: str = "act", grace_hours: float = 24,
                     max_attempts: int = 3, lease_seconds: float = 60) -> None:
        self.policy_path.write_text(
            "version: 1\n"
            f"mode: {mode}\n"
            "channels:\n"
            "  hook:\n"
            "    type: webhook\n"
            f"    url: {self.receiver_url}\n"
            "    timeout_seconds: 1\n"
            "routes:\n"
            "  - name: all\n"
            "    channels: [hook]\n"
            "outbox:\n"
            "  base_delay_seconds: 0.01\n"
            "  max_delay_seconds: 0.05\n"
            "rotation:\n"
            f"  grace_period_hours: {grace_hours}\n"
            f"  max_attempts: {max_attempts}\n"
            f"  step_lease_seconds: {lease_seconds}\n"
            f"{self.extra}"
            "  secrets:\n" + ("".join(self.rules) or "    []\n")
        )
        from pitcrew.bootstrap import reset_services
        from pitcrew.runtime import reset_runtime

        reset_runtime()
        reset_services()

    def rule(self, secret: str, strategy: str, **extra: Any) -> None:
        lines = f"    - vault: {VAULT}\n      secret: {secret}\n      strategy: {strategy}\n"
        for key, value in extra.items():
            lines += f"      {key}: {json.dumps(value)}\n"
        self.rules.append(lines)

    # --- seeding -----------------------------------------------------------------------------

    def seed_dual(self, strategy: str, name: str, *, tag_key: bool = True,
                  rule: bool = True, **rule_extra: Any) -> Seeded:
        rid = resource_id(strategy, name)
        size = 64 if strategy in ("cosmos-keys", "storage-keys") else 32
        keys = {slot: new_key(size) for slot in SLOTS[strategy]}
        if strategy == "cosmos-keys":
            keys["primaryReadonlyMasterKey"] = new_key()
            keys["secondaryReadonlyMasterKey"] = new_key()
        self.local.add_resource(rid, keys)
        primary = keys[SLOTS[strategy][0]]
        tags = {"pitcrew-key": "primary", "pitcrew-resource": rid} if tag_key else {}
        secret = f"{name}-key"
        written = self.client.set_secret(
            secret, primary, tags=tags, expires_on=datetime.now(UTC) + timedelta(days=20)
        )
        if rule:
            self.rule(secret, strategy, resource=rid, **rule_extra)
            self.write_policy()
        return Seeded(strategy, secret, rid, written.properties.version, dict(keys),
                      set(keys.values()))

    def keys(self, seeded: Seeded) -> dict[str, str]:
        current = self.local.keys(seeded.resource)
        seeded.values.update(current.values())
        return current

    def latest(self, secret: str) -> Any:
        return self.client.get_secret(secret)

    def versions(self, secret: str) -> list[Any]:
        return list(self.client.list_properties_of_secret_versions(secret))


def event_body(vault: str, secret: str, version: str, *, event_id: str | None = None,
               event_type: str = "Microsoft.KeyVault.SecretNearExpiry") -> bytes:
    return json.dumps([{
        "id": event_id or f"evt-{secrets.token_hex(8)}",
        "topic": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/"
                 f"vaults/{vault}",
        "subject": secret,
        "eventType": event_type,
        "eventTime": datetime.now(UTC).isoformat(),
        "data": {
            "Id": f"https://{vault}.vault.azure.net/secrets/{secret}/{version}",
            "VaultName": vault, "ObjectType": "Secret", "ObjectName": secret,
            "Version": version, "NBF": None,
            "EXP": int((datetime.now(UTC) + timedelta(days=20)).timestamp()),
        },
        "dataVersion": "1", "metadataVersion": "1",
    }]).encode()


def deliver(body: bytes) -> api.HttpResult:
    return api.receive_events("POST", {"Content-Type": "application/json"}, body)


def outcome(result: api.HttpResult) -> str:
    if result.status == 503:
        return "retry"
    assert result.status == 200, result.body
    return str(result.body["events"][0]["outcome"])


def audit_records(target: str | None = None) -> list[dict[str, Any]]:
    from pitcrew.bootstrap import get_services

    now = datetime.now(UTC)
    records = get_services().audit.query(
        since=now - timedelta(hours=1), until=now + timedelta(days=3), target=target
    )
    return [r.to_dict() for r in records]


def runs() -> list[dict[str, Any]]:
    from pitcrew.bootstrap import get_services
    from pitcrew.rotation.engine import RUN_KIND

    return [{"run_id": r.run_id, "step": r.step, "status": r.status, "data": r.data}
            for r in get_services().state.list_runs(RUN_KIND)]


def assert_no_secret_values(values: Iterable[str], *texts: Any) -> None:
    """No secret value (nor its base64 body without padding) appears in any of `texts`."""
    haystack = "\n".join(t if isinstance(t, str) else json.dumps(t, default=str) for t in texts)
    for value in values:
        if not value:
            continue
        probe = value.rstrip("=")
        assert probe not in haystack, "a secret value leaked"


def time_travel(monkeypatch: pytest.MonkeyPatch, delta: timedelta) -> None:
    """Move the clock pitcrew's leases and grace periods read (pitcrew.state.utcnow)."""
    import pitcrew.state as state_module

    real = datetime.now
    monkeypatch.setattr(state_module, "utcnow", lambda: real(UTC) + delta)


def deny_vault(local: LocalAzure, vault: str, principals: list[str]) -> None:
    """Take every data-plane role on `vault` from `principals` (the app is "pitcrew-app")."""
    import ssl

    import httpx

    context = ssl.create_default_context(cafile=str(local.ca_path))
    with httpx.Client(verify=context) as client:
        client.put(f"{local.vault_url(vault)}/_local/access",
                   json={"deny": principals}).raise_for_status()


def iter_lines(text: str) -> Iterator[str]:
    yield from text.splitlines()
