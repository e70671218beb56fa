"""The endpoint's state: vaults with their secret versions, ARM resources with their keys, and a log
of every change made through ARM. In memory, optionally mirrored to a SQLite file.

The SQLite file holds one JSON document, rewritten after each change: the endpoint serves one
developer, so simplicity beats write throughput. The file holds secret values in clear text;
it is for local development only and is created owner-readable only.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from pitcrew_dev.azure_endpoint.config import CertificateSeed, EndpointConfig, KeySeed
from pitcrew_dev.azure_endpoint.resources import (
    ResourceKind,
    canonical_id,
    check_rights,
    new_key,
    spec_for,
    spec_of,
)


class SecretVersion(BaseModel):
    version: str
    value: str = Field(repr=False)  # never in a repr, so never in a traceback's locals dump
    content_type: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None
    created: int
    updated: int


class SecretRecord(BaseModel):
    name: str  # as first created; lookups are case-insensitive like Key Vault's
    versions: list[SecretVersion] = Field(default_factory=list)  # oldest first
    deleted_on: int | None = None

    @property
    def latest(self) -> SecretVersion:
        return self.versions[-1]

    def version(self, version: str) -> SecretVersion | None:
        return next((v for v in self.versions if v.version == version.lower()), None)


class KeyVersion(BaseModel):
    version: str
    kty: str = "RSA"
    n: str = Field(default="", repr=False)  # public modulus (base64url); no private part is kept
    key_ops: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None
    created: int
    updated: int


class KeyRecord(BaseModel):
    name: str
    versions: list[KeyVersion] = Field(default_factory=list)  # oldest first
    # The rotation policy as Key Vault stores it: lifetimeActions + attributes.expiryTime.
    rotation_policy: dict[str, Any] | None = None
    rotations: int = 0  # rotate operations, counted so tests can assert "exactly once"

    @property
    def latest(self) -> KeyVersion:
        return self.versions[-1]


class CertificateVersion(BaseModel):
    version: str
    tags: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None
    created: int
    updated: int


class CertificateRecord(BaseModel):
    name: str
    versions: list[CertificateVersion] = Field(default_factory=list)  # oldest first
    policy: dict[str, Any] = Field(default_factory=dict)  # Key Vault's policy JSON
    pending: dict[str, Any] | None = None  # the pending (create) operation, if any
    creations: int = 0  # create operations, counted so tests can assert "exactly once"

    @property
    def latest(self) -> CertificateVersion:
        return self.versions[-1]


class VaultRecord(BaseModel):
    port: int = 0  # the port it was last served on, reused after a restart when free
    secrets: dict[str, SecretRecord] = Field(default_factory=dict)  # lower-case name -> record
    deleted: dict[str, SecretRecord] = Field(default_factory=dict)  # soft-deleted, recoverable
    keys: dict[str, KeyRecord] = Field(default_factory=dict)  # lower-case name -> record
    certificates: dict[str, CertificateRecord] = Field(default_factory=dict)
    issuers: dict[str, str] = Field(default_factory=dict)  # issuer name -> provider (DigiCert)


class ResourceRecord(BaseModel):
    id: str
    kind: ResourceKind
    keys: dict[str, str] = Field(default_factory=dict, repr=False)
    regenerations: dict[str, int] = Field(default_factory=dict)
    restarts: int = 0
    # Key Vault reference refreshes (POST {site}/config/configreferences/appsettings/refresh).
    reference_refreshes: int = 0
    # Authorization rules: Listen / Send / Manage, checked by the SAS data-plane routes.
    rights: list[str] = Field(default_factory=list)
    # Storage accounts: allowSharedKeyAccess. When false, Azure refuses every SharedKey-signed
    # request (403 KeyBasedAuthenticationNotPermitted), whatever the key.
    shared_key_access: bool = True
    # ARM: a "ReadOnly" lock refuses every POST action (listKeys, regenerateKey, restart) with
    # 409 ScopeLocked; `rbac_denied` refuses the caller's actions with 403 AuthorizationFailed
    # (no role assignment covers them), as Azure does.
    lock: str | None = None
    rbac_denied: bool = False
    # Data-plane refusals that are not about the key, as Azure gives them: `local_auth=False`
    # (disableLocalAuth on a Cosmos DB account or a Service Bus / Event Hubs namespace: every
    # key-signed request refused) and `network_denied` (the account's firewall does not admit
    # the caller's address; Cosmos DB and Storage).
    local_auth: bool = True
    network_denied: bool = False
    created: int


class Operation(BaseModel):
    """One change made through ARM, as Azure's activity log would show it (never a key value)."""

    at: float
    principal: str
    resource_id: str
    action: str
    key: str | None = None


class StateData(BaseModel):
    vaults: dict[str, VaultRecord] = Field(default_factory=dict)  # lower-case vault name
    resources: dict[str, ResourceRecord] = Field(default_factory=dict)  # canonical id
    operations: list[Operation] = Field(default_factory=list)


def public_modulus() -> str:
    """A made-up RSA modulus (base64url): pitcrew never uses key material, only properties."""
    return base64.urlsafe_b64encode(b"\xc1" + os.urandom(255)).decode().rstrip("=")


def certificate_policy(*, issuer: str, subject: str, validity_months: int,
                       lifetime_percentage: int | None, days_before_expiry: int | None,
                       now: int) -> dict[str, Any]:
    """A certificate policy in Key Vault's JSON shape."""
    trigger: dict[str, int] = {}
    if days_before_expiry is not None:
        trigger["days_before_expiry"] = days_before_expiry
    elif lifetime_percentage is not None:
        trigger["lifetime_percentage"] = lifetime_percentage
    action = {"trigger": trigger or {"lifetime_percentage": 90},
              "action": {"action_type": "AutoRenew" if trigger else "EmailContacts"}}
    return {
        "key_props": {"exportable": True, "kty": "RSA", "key_size": 2048, "reuse_key": False},
        "secret_props": {"contentType": "application/x-pkcs12"},
        "x509_props": {"subject": subject, "validity_months": validity_months},
        "lifetime_actions": [action],
        "issuer": {"name": issuer},
        "attributes": {"enabled": True, "created": now, "updated": now},
    }


def _relative(days: float | None, now: int) -> int | None:
    return now + int(days * 86400) if days is not None else None


def _seeded_key(name: str, seed: KeySeed, now: int) -> KeyRecord:
    created = _relative(-seed.created_days_ago if seed.created_days_ago else None, now) \
        or seed.created or now
    expires = _relative(seed.expires_in_days, now) or seed.expires_on
    return KeyRecord(name=name, rotation_policy=seed.rotation_policy, versions=[KeyVersion(
        version=seed.version or os.urandom(16).hex(), kty=seed.kty, n=public_modulus(),
        key_ops=["sign", "verify", "wrapKey", "unwrapKey", "encrypt", "decrypt"],
        tags=dict(seed.tags), expires=expires, created=created, updated=created)])


def _seeded_certificate(name: str, seed: CertificateSeed, now: int) -> CertificateRecord:
    created = _relative(-seed.created_days_ago if seed.created_days_ago else None, now) \
        or seed.created or now
    expires = _relative(seed.expires_in_days, now) or seed.expires_on \
        or created + seed.validity_months * 30 * 86400
    return CertificateRecord(
        name=name,
        policy=certificate_policy(issuer=seed.issuer, subject=seed.subject,
                                  validity_months=seed.validity_months,
                                  lifetime_percentage=seed.lifetime_percentage,
                                  days_before_expiry=seed.days_before_expiry, now=created),
        versions=[CertificateVersion(version=seed.version or os.urandom(16).hex(),
                                     tags=dict(seed.tags), not_before=created, expires=expires,
                                     created=created, updated=created)])


# Bounded so a long dev session doesn't grow the state file without limit.
MAX_OPERATIONS = 1000


class UnknownResourceKind(ValueError):
    pass


class StateStore:
    """Thread-safe holder of StateData. Mutate only inside `with store.change() as data:`."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.RLock()
        self._path = Path(path) if path else None
        self._data = self._load() if self._path else StateData()

    @property
    def path(self) -> Path | None:
        return self._path

    @contextlib.contextmanager
    def read(self) -> Iterator[StateData]:
        with self._lock:
            yield self._data

    @contextlib.contextmanager
    def change(self) -> Iterator[StateData]:
        with self._lock:
            yield self._data
            self._save()

    # --- seeding -----------------------------------------------------------------------------

    def apply_config(self, config: EndpointConfig) -> None:
        """Add what the config names and is missing; never overwrite persisted state."""
        now = int(time.time())
        with self.change() as data:
            for name, port in config.vaults.items():
                vault = data.vaults.setdefault(name.lower(), VaultRecord(port=port))
                if port:
                    vault.port = port
            for seed in config.resources:
                record = self._ensure_resource(data, seed.id, seed.keys, now, seed.rights,
                                               seed.shared_key_access)
                record.lock, record.rbac_denied = seed.lock, seed.rbac_denied
                record.local_auth, record.network_denied = seed.local_auth, seed.network_denied
            for vault_name, key_seeds in config.keys.items():
                vault = data.vaults.setdefault(vault_name.lower(), VaultRecord())
                for key_name, key_seed in key_seeds.items():
                    if key_name.lower() not in vault.keys:
                        vault.keys[key_name.lower()] = _seeded_key(key_name, key_seed, now)
            for vault_name, cert_seeds in config.certificates.items():
                vault = data.vaults.setdefault(vault_name.lower(), VaultRecord())
                for cert_name, cert_seed in cert_seeds.items():
                    if cert_name.lower() not in vault.certificates:
                        vault.certificates[cert_name.lower()] = _seeded_certificate(
                            cert_name, cert_seed, now)
            for vault_name, issuers in config.issuers.items():
                vault = data.vaults.setdefault(vault_name.lower(), VaultRecord())
                for issuer, provider in issuers.items():
                    vault.issuers.setdefault(issuer, provider)
            for vault_name, seeds in config.secrets.items():
                vault = data.vaults.setdefault(vault_name.lower(), VaultRecord())
                for secret_name, secret_seed in seeds.items():
                    if secret_name.lower() in vault.secrets:
                        continue
                    vault.secrets[secret_name.lower()] = SecretRecord(
                        name=secret_name,
                        versions=[
                            SecretVersion(
                                version=secret_seed.version or os.urandom(16).hex(),
                                value=secret_seed.value,
                                content_type=secret_seed.content_type,
                                tags=dict(secret_seed.tags),
                                expires=_relative(secret_seed.expires_in_days, now)
                                or secret_seed.expires_on,
                                created=now,
                                updated=now,
                            )
                        ],
                    )

    def ensure_resource(
        self,
        resource_id: str,
        keys: dict[str, str] | None = None,
        rights: list[str] | None = None,
        shared_key_access: bool = True,
        *,
        lock: str | None = None,
        rbac_denied: bool = False,
        local_auth: bool = True,
        network_denied: bool = False,
    ) -> ResourceRecord:
        with self.change() as data:
            record = self._ensure_resource(data, resource_id, keys or {}, int(time.time()),
                                           rights, shared_key_access)
            record.lock, record.rbac_denied = lock, rbac_denied
            record.local_auth, record.network_denied = local_auth, network_denied
            return record

    @staticmethod
    def _ensure_resource(
        data: StateData,
        resource_id: str,
        keys: dict[str, str],
        now: int,
        rights: list[str] | None = None,
        shared_key_access: bool = True,
    ) -> ResourceRecord:
        spec = spec_for(resource_id)
        if spec is None:
            raise UnknownResourceKind(
                f"unsupported resource id {resource_id!r}: expected a Cosmos DB account, Storage "
                "account, Service Bus / Event Hubs authorization rule or Web site id"
            )
        existing = data.resources.get(canonical_id(resource_id))
        if existing is not None:
            return existing
        unknown = set(keys) - set(spec.key_names)
        if unknown:
            raise ValueError(
                f"resource {resource_id!r} has no key(s) {sorted(unknown)}; "
                f"its keys are {list(spec.key_names)}"
            )
        record = ResourceRecord(
            id="/" + resource_id.strip().strip("/"),
            kind=spec.kind,
            keys={name: keys.get(name) or new_key(spec) for name in spec.key_names},
            rights=check_rights(spec.kind, rights),
            shared_key_access=shared_key_access,
            created=now,
        )
        data.resources[canonical_id(resource_id)] = record
        return record

    def regenerate(
        self, resource_id: str, key_name: str, principal: str, value: str | None
    ) -> None:
        """Replace one key and count it: the counter is how tests prove "exactly once"."""
        with self.change() as data:
            record = data.resources[canonical_id(resource_id)]
            record.keys[key_name] = value or new_key(spec_of(record.kind))
            record.regenerations[key_name] = record.regenerations.get(key_name, 0) + 1
            data.operations.append(
                Operation(
                    at=time.time(),
                    principal=principal,
                    resource_id=record.id,
                    action="regenerateKey",
                    key=key_name,
                )
            )
            del data.operations[:-MAX_OPERATIONS]

    def restart(self, resource_id: str, principal: str) -> None:
        with self.change() as data:
            record = data.resources[canonical_id(resource_id)]
            record.restarts += 1
            data.operations.append(
                Operation(
                    at=time.time(), principal=principal, resource_id=record.id, action="restart"
                )
            )
            del data.operations[:-MAX_OPERATIONS]

    def refresh_references(self, resource_id: str, principal: str) -> None:
        """A site re-read its Key Vault references: counted, so tests can assert exactly once."""
        with self.change() as data:
            record = data.resources[canonical_id(resource_id)]
            record.reference_refreshes += 1
            data.operations.append(
                Operation(
                    at=time.time(),
                    principal=principal,
                    resource_id=record.id,
                    action="refreshKeyVaultReferences",
                )
            )
            del data.operations[:-MAX_OPERATIONS]

    # --- persistence -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        assert self._path is not None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if not self._path.exists():
            # Create owner-only before SQLite writes any secret into it.
            self._path.touch(mode=0o600)
        connection = sqlite3.connect(self._path)
        connection.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY, doc TEXT)")
        return connection

    def _load(self) -> StateData:
        with contextlib.closing(self._connect()) as connection:
            row = connection.execute("SELECT doc FROM state WHERE id = 1").fetchone()
        if row is None:
            return StateData()
        try:
            return StateData.model_validate_json(row[0])
        except ValueError as exc:
            # Name the file and what to do; pydantic's message could quote stored values.
            raise ValueError(
                f"local Azure endpoint state {self._path} is unreadable "
                f"({type(exc).__name__}); delete it to start fresh"
            ) from None

    def _save(self) -> None:
        if self._path is None:
            return
        doc = self._data.model_dump_json()
        with contextlib.closing(self._connect()) as connection, connection:
            connection.execute("INSERT OR REPLACE INTO state (id, doc) VALUES (1, ?)", (doc,))
