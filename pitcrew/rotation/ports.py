"""The ports the rotation engine depends on. `pitcrew/azure/` implements them with the Azure SDKs;
tests run those implementations against the local Azure endpoint.

Values returned by these ports are secret: they are held in objects whose repr hides them and
are never logged, audited, notified or put in an exception message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pitcrew.errors import PitcrewError


class CredentialRejected(PitcrewError):
    """The service refused the credential under test (a wrong or stale key): the run stops."""


class ProviderRefused(PitcrewError):
    """The provider's control plane refused pitcrew for a reason retrying cannot fix (no role
    assignment covers the action, a ReadOnly lock on the resource): the run stops at once with
    what a person must do, instead of failing max_attempts times with the raw error."""


class SecretNotFound(PitcrewError):
    """The secret (or the version) does not exist in the vault."""


class VaultUnavailable(PitcrewError):
    """pitcrew cannot use the vault: it does not exist (`kind="unknown"`) or pitcrew's identity
    may not do what rotation needs there (`kind="forbidden"`, `role` names what is missing).
    Not transient: a person must act (create the vault / grant the role), so the run stops."""

    def __init__(self, vault: str, kind: str, role: str, detail: str = "") -> None:
        self.vault = vault
        self.kind = kind
        self.role = role
        self.detail = detail
        if kind == "unknown":
            text = f"vault {vault} does not exist or is not reachable by pitcrew"
        else:
            text = f"pitcrew's identity lacks {role} on vault {vault}"
        super().__init__(text + (f" ({detail})" if detail else ""))

    @property
    def action(self) -> str:
        """What a person does about it."""
        if self.kind == "unknown":
            return (f"check the vault name {self.vault!r} (the event or request names a vault "
                    "pitcrew does not know)")
        return (f"grant pitcrew's managed identity the {self.role} role on vault {self.vault} "
                "(infra/: the rotated vaults' role assignments)")


@dataclass(frozen=True)
class SecretVersion:
    """One version of a Key Vault secret. `value` is excluded from repr and comparisons.
    `content_type` is the version's content type (None when it has none, or when the store
    does not say): a version pitcrew promotes carries it over."""

    name: str
    version: str
    value: str | None = field(repr=False, compare=False)
    tags: Mapping[str, str] = field(default_factory=dict)
    expires_on: datetime | None = None
    created_on: datetime | None = None
    enabled: bool = True
    content_type: str | None = None


class SecretStore(Protocol):
    """Key Vault secrets, as the engine uses them."""

    def latest(self, vault: str, name: str) -> SecretVersion | None:
        """The current version with its value, tags and content type, or None when the secret
        does not exist. A disabled current version comes back with `enabled=False` and no
        value. Raises VaultUnavailable when the vault is unknown or pitcrew may not read it."""
        ...

    def set(
        self, vault: str, name: str, value: str, *, tags: Mapping[str, str],
        expires_on: datetime | None, content_type: str | None = None,
    ) -> SecretVersion:
        """Write a new version; returns it (without needing to read it back)."""
        ...

    def disable(self, vault: str, name: str, version: str) -> None:
        """Disable one version (its value can no longer be read); idempotent."""
        ...

    def versions(self, vault: str, name: str) -> list[SecretVersion]:
        """Every version's properties, without values ([] when the secret does not exist)."""
        ...

    def get(self, vault: str, name: str, version: str) -> SecretVersion | None:
        """One version with its value; None when it does not exist or is disabled."""
        ...


class CredentialProvider(Protocol):
    """A dual-key resource (Cosmos DB account, Storage account, SB/EH authorization rule)."""

    strategy: str
    key_slots: tuple[str, str]
    """The two key slots, in the provider's own names (primaryMasterKey, key1, primaryKey...)."""

    def list_keys(self, resource_id: str) -> dict[str, str]:
        """Slot name -> current key value, read from the provider."""
        ...

    def regenerate(self, resource_id: str, slot: str) -> None:
        """Regenerate one key slot. The engine guarantees it is never the slot in use."""
        ...

    def test(self, resource_id: str, slot: str, value: str) -> None:
        """Prove the key with a data-plane call signed with it; CredentialRejected if refused."""
        ...


class EventPublisher(Protocol):
    """Publishes CloudEvents 1.0 (as plain dicts) for consumers; never with a secret value."""

    def publish(self, event: Mapping[str, Any]) -> None: ...


class SiteRestarter(Protocol):
    def restart(self, site_id: str) -> None: ...


@dataclass
class RotationPorts:
    secrets: SecretStore
    providers: Mapping[str, CredentialProvider]
    events: EventPublisher | None = None
    sites: SiteRestarter | None = None
