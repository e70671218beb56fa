"""The `rotation:` section of pitcrew.yaml (see docs/rotation.md).

Which secrets pitcrew rotates, how, and the guard rails around it:

    rotation:
      grace_period_hours: 24        # before the same secret may rotate again
      validity_days: 90             # expiry written on each new version
      max_attempts: 5               # failed attempts of a run before it ends in an alert
      use_tags: false               # also pick strategies from the secret's pitcrew-* tags
      hook_modules: [mypkg.hooks]   # modules registering generated-credential hooks
      secrets:
        - vault: sample-kv          # glob patterns (fnmatch), case-insensitive
          secret: cosmos-primary-key
          strategy: cosmos-keys
          resource: /subscriptions/.../Microsoft.DocumentDB/databaseAccounts/demo
          consumers:                # sites reading it as a Key Vault reference: refreshed
            - site: /subscriptions/.../Microsoft.Web/sites/api
              restart: false        # also restart it (default: refresh only)
        - vault: sample-kv          # migrated from Azure's rotation samples: the secret's
          secret: "*-key"           # ProviderAddress / CredentialId / ValidityPeriodDays tags
          use_tags: true            # name the resource, the key and the validity
"""

from __future__ import annotations

import fnmatch
import re
import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pitcrew.schema import StrictModel, matching

DualKeyStrategy = Literal["cosmos-keys", "storage-keys", "servicebus-keys", "eventhubs-keys"]
StrategyName = Literal[
    "cosmos-keys", "storage-keys", "servicebus-keys", "eventhubs-keys", "generated", "notify"
]
DUAL_KEY_STRATEGIES: tuple[str, ...] = (
    "cosmos-keys", "storage-keys", "servicebus-keys", "eventhubs-keys",
)


def _arm_id(provider_path: str) -> re.Pattern[str]:
    """An ARM resource id (any case) whose part after `/providers/` matches `provider_path`."""
    return re.compile(
        rf"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/{provider_path}$", re.I)


# What each dual-key strategy's resource id must look like (checked at load time, so a typo fails
# `pitcrew policy validate` instead of the first rotation).
_RESOURCE_PATTERNS: dict[str, re.Pattern[str]] = {
    "cosmos-keys": _arm_id(r"Microsoft\.DocumentDB/databaseAccounts/[^/]+"),
    "storage-keys": _arm_id(r"Microsoft\.Storage/storageAccounts/[^/]+"),
    "servicebus-keys": _arm_id(r"Microsoft\.ServiceBus/namespaces/[^/]+(/(queues|topics)/[^/]+)?"
                               r"/authorizationRules/[^/]+"),
    "eventhubs-keys": _arm_id(r"Microsoft\.EventHub/namespaces/[^/]+(/eventhubs/[^/]+)?"
                              r"/authorizationRules/[^/]+"),
}
_SITE = _arm_id(r"Microsoft\.Web/sites/[^/]+")
_NOT_A_SITE = " is not an App Service / Function App site id"
_HOOK = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
# A dual-key resource id goes into the pitcrew-resource (and ProviderAddress) tag of every
# version pitcrew promotes; Key Vault refuses a tag value over 256 characters, and by then the
# key is regenerated. So a longer id is refused when the policy loads (`policy validate`).
MAX_RESOURCE_ID = 256


def resource_pattern_ok(strategy: str, resource_id: str) -> bool:
    pattern = _RESOURCE_PATTERNS.get(strategy)
    return bool(pattern and pattern.match(resource_id))


class PasswordPolicy(StrictModel):
    """The character policy of a generated credential."""

    length: int = Field(default=32, ge=12, le=256)
    lowercase: int = Field(default=1, ge=0, description="Minimum lower-case letters.")
    uppercase: int = Field(default=1, ge=0, description="Minimum upper-case letters.")
    digits: int = Field(default=1, ge=0, description="Minimum digits.")
    symbols: int = Field(default=0, ge=0, description="Minimum symbols.")
    symbol_set: str = Field(default="-_.~!#%+=", min_length=1,
                            description="Symbols allowed (some providers refuse quotes, @ or /).")

    @model_validator(mode="after")
    def _fits(self) -> PasswordPolicy:
        if self.lowercase + self.uppercase + self.digits + self.symbols > self.length:
            raise ValueError("the minimum counts add up to more than length")
        bad = [c for c in self.symbol_set if c not in string.punctuation]
        if bad:
            raise ValueError(f"symbol_set may hold punctuation only, not {''.join(bad)!r}")
        return self


class Consumer(StrictModel):
    """A site that reads the secret as a Key Vault reference."""

    site: str = Field(description="ARM id of the App Service / Function App site.")
    restart: bool = Field(
        default=False,
        description="Restart the site after refreshing its Key Vault references (most apps "
        "re-read settings on the refresh alone).",
    )

    @field_validator("site")
    @classmethod
    def _site(cls, site: str) -> str:
        return matching(site, _SITE, _NOT_A_SITE, shown=None)


class SecretRule(StrictModel):
    """Which strategy owns the secrets matching `vault`/`secret` (fnmatch globs)."""

    vault: str = Field(min_length=1)
    secret: str = Field(min_length=1)
    strategy: StrategyName | None = Field(
        default=None,
        description="Required unless use_tags is true (then the ProviderAddress tag decides).",
    )
    use_tags: bool = Field(
        default=False,
        description="Read the resource, key and validity from the secret's tags as Azure's "
        "rotation samples write them (ProviderAddress, CredentialId, ValidityPeriodDays).",
    )
    resource: str | None = Field(
        default=None, description="ARM id of the resource whose keys a dual-key strategy rotates."
    )
    hook: str | None = Field(
        default=None, description="Name of the registered hook a generated credential uses."
    )
    target: str | None = Field(
        default=None, description="What the hook applies the credential to (passed to it as is)."
    )
    password: PasswordPolicy = Field(default_factory=PasswordPolicy)
    validity_days: float | None = Field(default=None, gt=0, le=3650)
    restart_sites: list[str] = Field(
        default_factory=list,
        description="Sites to refresh and restart (the same as consumers with restart: true).",
    )
    consumers: list[Consumer] = Field(default_factory=list)

    @field_validator("restart_sites")
    @classmethod
    def _sites(cls, sites: list[str]) -> list[str]:
        return [matching(site, _SITE, _NOT_A_SITE, shown=None) for site in sites]

    def all_consumers(self) -> list[Consumer]:
        """`consumers`, then `restart_sites` (refreshed and restarted), each site once."""
        listed = list(self.consumers)
        seen = {c.site.lower() for c in listed}
        listed += [Consumer(site=s, restart=True) for s in self.restart_sites
                   if s.lower() not in seen]
        return listed

    @model_validator(mode="after")
    def _complete(self) -> SecretRule:
        if self.resource is not None and len(self.resource) > MAX_RESOURCE_ID:
            raise ValueError(
                f"resource is {len(self.resource)} characters ({self.resource[:80]!r}…); "
                f"pitcrew writes it into the pitcrew-resource tag of each version it promotes "
                f"and Key Vault takes tag values of at most {MAX_RESOURCE_ID} characters")
        if self.strategy is None and not self.use_tags:
            raise ValueError("a rule needs 'strategy' (or use_tags: true to read it from tags)")
        if self.use_tags and self.strategy not in (None, *DUAL_KEY_STRATEGIES):
            raise ValueError("use_tags rules are for dual-key strategies (ProviderAddress names "
                             "the resource)")
        if self.use_tags and self.strategy and self.resource and not resource_pattern_ok(
                self.strategy, self.resource):
            raise ValueError(
                f"resource {self.resource!r} is not a valid id for strategy {self.strategy}")
        if self.strategy in DUAL_KEY_STRATEGIES and not self.use_tags:
            if not self.resource:
                raise ValueError(f"strategy {self.strategy} needs 'resource' (an ARM id)")
            if not resource_pattern_ok(self.strategy, self.resource):
                raise ValueError(
                    f"resource {self.resource!r} is not a valid id for strategy {self.strategy}"
                )
        if self.strategy == "generated" and not (self.hook and _HOOK.match(self.hook)):
            raise ValueError("strategy generated needs 'hook': the name of a registered hook")
        return self

    def matches(self, vault: str, secret: str) -> bool:
        return fnmatch.fnmatchcase(vault.lower(), self.vault.lower()) and fnmatch.fnmatchcase(
            secret.lower(), self.secret.lower()
        )


class RotationPolicy(StrictModel):
    grace_period_hours: float = Field(
        default=24.0, ge=0, description="Time that must pass before the same secret rotates again."
    )
    validity_days: float = Field(
        default=90.0, gt=0, le=3650, description="Expiry written on each new secret version."
    )
    max_attempts: int = Field(
        default=5, ge=1, le=100,
        description="Failed attempts of one run before it stops with an alert.",
    )
    step_lease_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="How long a crashed instance holds a step before another may resume the "
        "run; renewed every third of it while the step runs.",
    )
    use_tags: bool = Field(
        default=False,
        description="When no rule matches, read the secret's pitcrew-strategy/pitcrew-resource "
        "tags to choose a strategy.",
    )
    hook_modules: list[str] = Field(
        default_factory=list, description="Modules imported to register generated-credential hooks."
    )
    pending_suffix: str = Field(
        default="-pitcrew-pending", pattern=r"^-[a-z0-9-]{1,30}$",
        description="Suffix of the separate secret holding a generated credential until promoted.",
    )
    secrets: list[SecretRule] = Field(default_factory=list)

    def rule_for(self, vault: str, secret: str) -> SecretRule | None:
        """The first rule matching the secret, or None."""
        return next((r for r in self.secrets if r.matches(vault, secret)), None)
