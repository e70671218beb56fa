"""What the local Azure endpoint starts with: vaults, ARM resources and seed secrets.

Resources are pre-seeded, not invented on first touch (unless `auto_create` is set): a resource id
with a typo in a policy must fail locally with ARM's 404 the way it would fail in Azure, instead of
"working" against a key pair the endpoint made up on the spot.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pitcrew_dev.azure_endpoint.credential import LOCAL_TENANT_ID
from pitcrew_dev.azure_endpoint.quota import MetricSeed, QuotaSeed

# Key Vault's own rule for vault names (3-24 chars, letters/digits/hyphens, starts with a letter).
VAULT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")


class SecretSeed(BaseModel):
    """A secret present when the endpoint starts (only written if the vault has no such secret)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    value: str = Field(repr=False)  # repr=False: a seed printed in a traceback shows no value
    content_type: str | None = Field(default=None, alias="contentType")
    tags: dict[str, str] = Field(default_factory=dict)
    expires_on: int | None = Field(default=None, alias="exp", description="unix seconds")
    expires_in_days: float | None = Field(default=None, description="relative to the start")
    # Pins the first version's id, so a sample event naming that version matches (the demo).
    version: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class KeySeed(BaseModel):
    """A key present when the endpoint starts (only its public part is ever made up)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kty: str = "RSA"
    tags: dict[str, str] = Field(default_factory=dict)
    expires_on: int | None = Field(default=None, alias="exp", description="unix seconds")
    created: int | None = Field(default=None, description="unix seconds (back-date a key)")
    expires_in_days: float | None = Field(default=None, description="relative to the start")
    created_days_ago: float | None = Field(default=None, description="relative to the start")
    version: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    # Key Vault's rotation policy JSON: {"lifetimeActions": [...], "attributes": {...}}
    rotation_policy: dict[str, Any] | None = Field(default=None, alias="rotationPolicy")


class CertificateSeed(BaseModel):
    """A certificate present when the endpoint starts, with its policy's essentials."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tags: dict[str, str] = Field(default_factory=dict)
    expires_on: int | None = Field(default=None, alias="exp", description="unix seconds")
    created: int | None = Field(default=None, description="unix seconds (back-date it)")
    expires_in_days: float | None = Field(default=None, description="relative to the start")
    created_days_ago: float | None = Field(default=None, description="relative to the start")
    version: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    issuer: str = "Self"
    subject: str = "CN=pitcrew.local"
    validity_months: int = Field(default=12, ge=1, le=1200)
    # The AutoRenew trigger: a percentage of the lifetime or days before expiry (or neither:
    # EmailContacts only).
    lifetime_percentage: int | None = Field(default=80, ge=1, le=99)
    days_before_expiry: int | None = Field(default=None, ge=1)


class ResourceSeed(BaseModel):
    """An ARM resource the endpoint knows. `keys` pins key values; missing keys are random."""

    model_config = ConfigDict(extra="forbid")

    id: str
    keys: dict[str, str] = Field(default_factory=dict, repr=False)
    # Service Bus / Event Hubs rules only: any of Listen, Send, Manage (default: all three). The
    # SAS data-plane routes refuse an operation the rule has no right for, as Azure does.
    rights: list[str] | None = None
    # Storage accounts only: false refuses SharedKey requests, as allowSharedKeyAccess=false does.
    shared_key_access: bool = True
    # ARM refusals: a "ReadOnly" lock (409 ScopeLocked on POST actions), or no role assignment
    # for pitcrew's actions (403 AuthorizationFailed).
    lock: Literal["ReadOnly"] | None = None
    rbac_denied: bool = False
    # Data-plane refusals not about the key: disableLocalAuth (Cosmos DB, Service Bus, Event
    # Hubs) and a firewall that does not admit the caller (Cosmos DB, Storage).
    local_auth: bool = True
    network_denied: bool = False


class EndpointConfig(BaseModel):
    """The endpoint's seed. Load from a dict or a JSON file with `EndpointConfig.load`."""

    model_config = ConfigDict(extra="forbid")

    # vault name -> port (0: any free port). A vault needs its own port because Key Vault's SDK
    # parses secret ids as https://host[:port]/secrets/name[/version]: no room for a path prefix.
    vaults: dict[str, int] = Field(default_factory=dict)
    resources: list[ResourceSeed] = Field(default_factory=list)
    # vault name -> secret name -> seed
    secrets: dict[str, dict[str, SecretSeed]] = Field(default_factory=dict)
    # vault name -> key / certificate name -> seed; vault name -> issuer name -> provider
    keys: dict[str, dict[str, KeySeed]] = Field(default_factory=dict)
    certificates: dict[str, dict[str, CertificateSeed]] = Field(default_factory=dict)
    issuers: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Unknown resource ids answer 404 unless this is set; then they are created with random keys.
    auto_create: bool = False
    # Recovery readiness: Cosmos DB backups, storage protection, backup jobs, registries
    # (validated by pitcrew_dev.azure_endpoint.recovery.RecoverySeed).
    recovery: dict[str, Any] = Field(default_factory=dict)
    tenant_id: str = LOCAL_TENANT_ID
    # The Quota API's quotas and Azure Monitor metrics (pitcrew_dev/azure_endpoint/quota.py).
    quotas: list[QuotaSeed] = Field(default_factory=list)
    metrics: list[MetricSeed] = Field(default_factory=list)

    @field_validator("vaults", mode="before")
    @classmethod
    def _vault_list(cls, value: Any) -> Any:
        # A plain list of names is the common case: every vault on an ephemeral port.
        if isinstance(value, list | tuple):
            return {name: 0 for name in value}
        return value

    @field_validator("vaults")
    @classmethod
    def _vault_names(cls, value: dict[str, int]) -> dict[str, int]:
        for name, port in value.items():
            if not VAULT_NAME.match(name):
                raise ValueError(f"invalid vault name {name!r}: 3-24 letters, digits or hyphens")
            if not 0 <= port <= 65535:
                raise ValueError(f"invalid port {port} for vault {name!r}")
        return value

    @classmethod
    def load(cls, source: EndpointConfig | dict[str, Any] | str | Path | None) -> EndpointConfig:
        if source is None:
            return cls()
        if isinstance(source, EndpointConfig):
            return source
        if isinstance(source, dict):
            return cls.model_validate(source)
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ValueError(f"local Azure endpoint config not found: {path}") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"local Azure endpoint config {path} is not JSON: {exc.msg}") from exc
        return cls.model_validate(data)
