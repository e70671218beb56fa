"""The `expiry:` section of pitcrew.yaml (see docs/rotation.md, "The expiry sweep").

What the daily sweep looks at and what it expects of the secrets, keys and certificates there:

    expiry:
      vaults: [prod-kv, edge-kv]    # swept; names, not globs
      window_days: 30               # "expiring" = expires within this many days
      interval_hours: 24            # the timer sweeps once per interval (daily by default)
      require_expiry: true          # an enabled object without an expiry is a violation
      hygiene:
        retention_days: 30          # superseded versions older than this, still enabled: disabled
        disable_old_versions: plan  # plan (report only) | act | off
        require_content_type: true
        owner_tag: owner            # secrets without this tag are reported
      keys:                         # first match wins; globs, case-insensitive
        - vault: prod-kv
          key: "*"
          rotate: true              # rotate with Key Vault's own rotate operation
          expires_in_days: 90       # the rotation policy's expiryTime (P90D)
          rotate_before_expiry_days: 30
          notify_before_expiry_days: 30
          pinned_consumers: [payments-api]  # consumers pinned to a version: notified
      certificates:
        - vault: prod-kv
          certificate: "*"
          renew_at_percent: 80      # or renew_days_before_expiry: 30
          owner: team-edge
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from pitcrew.schema import StrictModel, matching

_VAULT = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
_GLOB = re.compile(r"^[0-9A-Za-z*?\[\]!-]{1,127}$")


def _glob(value: str) -> str:
    return matching(value, _GLOB, " is not a Key Vault name or glob", shown=None)


Glob = Annotated[str, Field(min_length=1), AfterValidator(_glob)]
"""A Key Vault name, or a glob over names (`*`, `?`, `[...]`), matched ignoring case."""


def _globbed(name: str, glob: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), glob.lower())


class KeyRule(StrictModel):
    """How pitcrew looks after the keys matching `vault`/`key`."""

    vault: Glob
    key: Glob
    rotate: bool = Field(default=True, description="Rotate with Key Vault's rotate operation "
                         "when the key nears expiry (events and the sweep).")
    expires_in_days: int = Field(default=90, ge=28, le=36500,
                                 description="The rotation policy's expiryTime (min 28 days).")
    rotate_before_expiry_days: int | None = Field(
        default=30, ge=7, description="Lifetime action Rotate, timeBeforeExpiry; null: none.")
    notify_before_expiry_days: int | None = Field(
        default=30, ge=7, description="Lifetime action Notify, timeBeforeExpiry; null: none.")
    pinned_consumers: list[str] = Field(
        default_factory=list, description="Consumers that pin a key version: told to move.")

    @model_validator(mode="after")
    def _fits(self) -> KeyRule:
        for name in ("rotate_before_expiry_days", "notify_before_expiry_days"):
            days = getattr(self, name)
            if days is not None and days > self.expires_in_days - 7:
                raise ValueError(f"{name} must be at least 7 days shorter than expires_in_days "
                                 f"({self.expires_in_days})")
        return self

    def matches(self, vault: str, key: str) -> bool:
        return _globbed(vault, self.vault) and _globbed(key, self.key)


class CertificateRule(StrictModel):
    """What the certificates matching `vault`/`certificate` must have in their policy."""

    vault: Glob
    certificate: Glob
    renew_at_percent: int | None = Field(default=None, ge=1, le=99)
    renew_days_before_expiry: int | None = Field(default=None, ge=1, le=3650)
    renew: bool = Field(default=True, description="Start the renewal when auto-renew did not "
                        "happen (self-signed and integrated CA issuers only).")
    owner: str | None = Field(default=None, max_length=200,
                              description="Who acts for other issuers (else the owner tag).")

    @model_validator(mode="after")
    def _one_trigger(self) -> CertificateRule:
        if self.renew_at_percent is not None and self.renew_days_before_expiry is not None:
            raise ValueError("give renew_at_percent or renew_days_before_expiry, not both")
        return self

    def matches(self, vault: str, certificate: str) -> bool:
        return _globbed(vault, self.vault) and _globbed(certificate, self.certificate)


class HygienePolicy(StrictModel):
    retention_days: float = Field(default=30.0, gt=0, le=3650)
    disable_old_versions: str = Field(default="plan", pattern=r"^(plan|act|off)$")
    require_content_type: bool = True
    owner_tag: str | None = Field(default="owner", min_length=1, max_length=512)


class ExpiryPolicy(StrictModel):
    vaults: list[str] = Field(default_factory=list)
    window_days: float = Field(default=30.0, gt=0, le=3650)
    interval_hours: float = Field(default=24.0, ge=1, le=24 * 31)
    require_expiry: bool = True
    integrated_issuers: list[str] = Field(
        default_factory=lambda: ["DigiCert", "GlobalSign"],
        description="Issuer providers Key Vault renews through on its own (besides Self).")
    renewal_wait_seconds: float = Field(default=60.0, ge=0, le=600,
                                        description="How long a sweep follows a renewal.")
    renewal_poll_seconds: float = Field(default=5.0, gt=0, le=60)
    hygiene: HygienePolicy = Field(default_factory=HygienePolicy)
    keys: list[KeyRule] = Field(default_factory=list)
    certificates: list[CertificateRule] = Field(default_factory=list)

    @field_validator("vaults")
    @classmethod
    def _vault_names(cls, vaults: list[str]) -> list[str]:
        for name in vaults:
            matching(name, _VAULT, " is not a Key Vault name (3-24 letters, digits, -)",
                     shown=None)
        if len({v.lower() for v in vaults}) != len(vaults):
            raise ValueError("a vault is listed twice")
        return vaults

    def key_rule(self, vault: str, key: str) -> KeyRule | None:
        return next((r for r in self.keys if r.matches(vault, key)), None)

    def certificate_rule(self, vault: str, certificate: str) -> CertificateRule | None:
        return next((r for r in self.certificates if r.matches(vault, certificate)), None)
