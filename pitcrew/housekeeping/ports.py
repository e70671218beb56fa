"""The ports housekeeping depends on. `pitcrew/azure/` implements them (keyvault.py for secrets'
properties, keyvault_keys.py, keyvault_certificates.py, tables/expiry.py); tests run those
implementations against the local Azure endpoint and Azurite.

Everything here is properties: names, versions, dates, tags, policies. No secret value, no
private key, no certificate body ever passes through these ports.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pitcrew.http.paging import Page

ObjectKind = Literal["secret", "key", "certificate"]


@dataclass(frozen=True)
class ObjectProperties:
    """One vault object's current version, as a listing shows it (never a value)."""

    kind: ObjectKind
    vault: str
    name: str
    enabled: bool
    expires_on: datetime | None = None
    created_on: datetime | None = None
    updated_on: datetime | None = None
    version: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    managed: bool = False  # a certificate's own key or secret: it follows the certificate


class SecretListing(Protocol):
    def list_properties(self, vault: str) -> Iterator[ObjectProperties]:
        """Every secret's current properties (VaultUnavailable when pitcrew cannot list)."""
        ...


@dataclass(frozen=True)
class KeyRotationPolicy:
    """A key's rotation policy, in days (Key Vault stores ISO 8601 durations)."""

    expires_in_days: int | None = None
    rotate_before_expiry_days: int | None = None
    rotate_after_create_days: int | None = None
    notify_before_expiry_days: int | None = None


class KeyStore(Protocol):
    def list_properties(self, vault: str) -> Iterator[ObjectProperties]: ...

    def latest_version(self, vault: str, name: str) -> str | None:
        """The current version id; None when the key does not exist."""
        ...

    def rotate(self, vault: str, name: str) -> ObjectProperties:
        """Key Vault's own rotate operation: a new version, by the key's rotation policy."""
        ...

    def rotation_policy(self, vault: str, name: str) -> KeyRotationPolicy | None: ...

    def set_rotation_policy(self, vault: str, name: str, policy: KeyRotationPolicy) -> None: ...


@dataclass(frozen=True)
class CertificatePolicyView:
    issuer: str  # "Self", "Unknown" (a CA outside Key Vault) or an issuer's name
    issuer_provider: str | None = None  # DigiCert, GlobalSign... for an integrated issuer
    auto_renew_percent: int | None = None
    auto_renew_days_before_expiry: int | None = None
    email_only: bool = False  # the lifetime action is EmailContacts, not AutoRenew
    validity_months: int | None = None

    @property
    def auto_renews(self) -> bool:
        return self.auto_renew_percent is not None or self.auto_renew_days_before_expiry is not None


@dataclass(frozen=True)
class RenewalStatus:
    status: str  # inProgress | completed | failed | cancelled
    error: str | None = None


class CertificateStore(Protocol):
    def list_properties(self, vault: str) -> Iterator[ObjectProperties]: ...

    def latest_version(self, vault: str, name: str) -> str | None: ...

    def policy(self, vault: str, name: str) -> CertificatePolicyView: ...

    def issuer_provider(self, vault: str, issuer: str) -> str | None:
        """The provider behind an issuer the vault knows; None when it does not know it."""
        ...

    def pending(self, vault: str, name: str) -> RenewalStatus | None:
        """The certificate's pending operation; None when there is none."""
        ...

    def begin_renewal(self, vault: str, name: str) -> RenewalStatus:
        """Create a new version with the certificate's own policy (begin_create_certificate)."""
        ...


@dataclass
class Finding:
    """What the sweep concluded about one object."""

    vault: str
    kind: ObjectKind
    name: str
    cls: str  # expired | expiring | no-expiry | ok
    version: str | None = None
    expires: datetime | None = None
    owner: str = ""  # the rule that owns it ("rotation:cosmos-keys", "keys", ...) or ""
    action: str = ""
    problems: list[str] = field(default_factory=list)
    sweep_id: str = ""
    swept_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "vault": self.vault, "kind": self.kind, "name": self.name, "class": self.cls,
            "version": self.version,
            "expires": self.expires.isoformat() if self.expires else None,
            "owner": self.owner or None, "action": self.action or None,
            "problems": list(self.problems), "sweep": self.sweep_id,
            "sweptAt": self.swept_at.isoformat() if self.swept_at else None,
        }


class FindingStore(Protocol):
    def replace(self, vault: str, findings: Iterable[Finding], *, sweep_id: str,
                listed: Collection[str], started: datetime) -> None:
        """Upsert `findings`, then remove the vault's rows of the kinds in `listed` (those the
        sweep listed in full) that this sweep did not find and that an earlier sweep (swept
        before `started`) wrote: a kind that could not be listed keeps its findings, and two
        sweeps at once never remove each other's."""
        ...

    def page(self, *, vault: str | None, cls: str | None, kind: str | None, limit: int,
             continuation: Mapping[str, Any] | None = None) -> Page[Finding]: ...


@dataclass
class HousekeepingPorts:
    secrets: SecretListing
    keys: KeyStore
    certificates: CertificateStore
    findings: FindingStore
