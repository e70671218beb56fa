"""Who owns a secret (`owner`: the policy's rule, else the secret's tags), and the tags pitcrew
reads and writes on secret versions (documented in docs/rotation.md).

Tags carry names, ids and times only, never a value: Key Vault shows tags to anyone who may
list secrets, including principals that may not read values.

Besides its own `pitcrew-*` tags, pitcrew understands the tags Azure's Key Vault rotation samples
(KeyVault-Rotation-StorageAccountKey-PowerShell and its siblings) put on the secrets they manage,
so those secrets can move to pitcrew without re-tagging:

    ProviderAddress     the ARM id of the Storage / Cosmos DB account (or SB / EH rule)
    CredentialId        which key the version holds: key1 / key2, Primary / Secondary, ...
    ValidityPeriodDays  how long each new version is valid (its expiry)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pitcrew.azure.arm import resource_kind
from pitcrew.errors import InvalidInput
from pitcrew.rotation.policy import PasswordPolicy, RotationPolicy, resource_pattern_ok
from pitcrew.rotation.ports import SecretStore, SecretVersion

STRATEGY = "pitcrew-strategy"  # cosmos-keys | storage-keys | servicebus-keys | eventhubs-keys ...
RESOURCE = "pitcrew-resource"  # the ARM id of the resource whose key the version holds
KEY = "pitcrew-key"  # primary | secondary: which of the resource's two keys the version holds
VALID_FROM = "pitcrew-valid-from"  # ISO 8601, when the credential was issued
VALID_UNTIL = "pitcrew-valid-until"  # ISO 8601, the expiry written on the version
ROTATED_AT = "pitcrew-rotated-at"  # ISO 8601, when pitcrew promoted this version
RUN = "pitcrew-run"  # the rotation run that wrote the version (makes promotion idempotent)
PENDING_FOR = "pitcrew-pending-for"  # on a pending secret: the secret it will be promoted to
HOOK = "pitcrew-hook"  # generated credentials: the hook that applies them
TARGET = "pitcrew-target"  # generated credentials: what the hook applies them to

SLOT_NAMES = ("primary", "secondary")
PREFIX = "pitcrew-"  # every tag pitcrew owns starts with it; the others are the user's

# Key Vault's limits on a secret version's tags: a write beyond them is a 400 (BadParameter).
MAX_TAGS = 15
MAX_TAG_VALUE = 256

# Azure's rotation samples.
PROVIDER_ADDRESS = "ProviderAddress"
CREDENTIAL_ID = "CredentialId"
VALIDITY_PERIOD_DAYS = "ValidityPeriodDays"
SAMPLE_TAGS = (PROVIDER_ADDRESS, CREDENTIAL_ID, VALIDITY_PERIOD_DAYS)

# CredentialId spellings, as pairs (first key, second key); the samples use key1/key2 for
# Storage and the provider's own names elsewhere. Matched case-insensitively.
_CREDENTIAL_PAIRS = (
    ("key1", "key2"),
    ("Primary", "Secondary"),
    ("primaryKey", "secondaryKey"),
    ("primaryMasterKey", "secondaryMasterKey"),
)
MAX_VALIDITY_DAYS = 3650

# (provider namespace, top-level type, final type) -> strategy
_STRATEGY_BY_TYPE = {
    ("microsoft.documentdb", "databaseaccounts", "databaseaccounts"): "cosmos-keys",
    ("microsoft.storage", "storageaccounts", "storageaccounts"): "storage-keys",
    ("microsoft.servicebus", "namespaces", "authorizationrules"): "servicebus-keys",
    ("microsoft.eventhub", "namespaces", "authorizationrules"): "eventhubs-keys",
}


def strategy_for_resource(resource_id: str, tag: str = PROVIDER_ADDRESS) -> str:
    """The dual-key strategy for an ARM id; InvalidInput naming `tag` when it is not one."""
    shown = resource_id[:200]
    key = resource_kind(resource_id)
    if key is None:
        raise InvalidInput(tag, f"{shown!r} is not an ARM resource id (/subscriptions/…/"
                                "resourceGroups/…/providers/…)")
    strategy = _STRATEGY_BY_TYPE.get(key)
    if strategy is None or not resource_pattern_ok(strategy, resource_id):
        raise InvalidInput(tag, f"{shown!r} is not the id of a Cosmos DB account, a Storage "
                                "account or a Service Bus / Event Hubs authorization rule")
    return strategy


def validity_days(version_tags: Mapping[str, str]) -> float | None:
    """ValidityPeriodDays as a number of days, None when absent; InvalidInput when malformed."""
    raw = version_tags.get(VALIDITY_PERIOD_DAYS)
    if raw is None or not str(raw).strip():
        return None
    try:
        days = float(str(raw).strip())
    except ValueError:
        raise InvalidInput(VALIDITY_PERIOD_DAYS, f"{str(raw)[:40]!r} is not a number of "
                                                 "days") from None
    if not 0 < days <= MAX_VALIDITY_DAYS:
        raise InvalidInput(VALIDITY_PERIOD_DAYS, f"must be more than 0 and at most "
                                                 f"{MAX_VALIDITY_DAYS} days, not {days:g}")
    return days


def credential_slot(version_tags: Mapping[str, str]) -> int | None:
    """Which key (0 or 1) CredentialId says the version holds; a hint, the value decides."""
    raw = str(version_tags.get(CREDENTIAL_ID, "")).strip()
    if not raw:
        return None
    for pair in _CREDENTIAL_PAIRS:
        for index, name in enumerate(pair):
            if raw.lower() == name.lower():
                return index
    known = ", ".join(n for pair in _CREDENTIAL_PAIRS for n in pair)
    raise InvalidInput(CREDENTIAL_ID, f"{raw[:40]!r} names no key; expected one of {known}")


def _credential_name(previous: str, index: int) -> str:
    """The CredentialId for key `index`, in the spelling the previous tag used."""
    for pair in _CREDENTIAL_PAIRS:
        lowered = [n.lower() for n in pair]
        if previous.lower() in lowered:
            name = pair[index]
            return name if previous[:1].isupper() == name[:1].isupper() else (
                name[:1].swapcase() + name[1:])
    return ("key1", "key2")[index]


def carried_forward(previous: Mapping[str, str], data: Mapping[str, Any]) -> dict[str, str]:
    """The sample tags for a new version pitcrew promotes, when the previous version had them:
    ProviderAddress and ValidityPeriodDays as they were, CredentialId naming the new key. So the
    next rotation (by pitcrew, or by the sample during a migration) reads the same facts."""
    if not any(tag in previous for tag in SAMPLE_TAGS) or not data.get("regenerate"):
        return {}
    carried: dict[str, str] = {}
    if VALIDITY_PERIOD_DAYS in previous:
        carried[VALIDITY_PERIOD_DAYS] = str(previous[VALIDITY_PERIOD_DAYS])
    if data.get("resource"):
        carried[PROVIDER_ADDRESS] = str(data["resource"])
    index = SLOT_NAMES.index(str(data["regenerate"]))
    carried[CREDENTIAL_ID] = _credential_name(str(previous.get(CREDENTIAL_ID, "")), index)
    return carried


def is_own(name: str) -> bool:
    """A tag pitcrew writes itself (set fresh on every version it writes, never carried)."""
    return name.lower().startswith(PREFIX)


@dataclass(frozen=True)
class VersionTags:
    """The tags of a version pitcrew writes, and what had to be left out of them."""

    tags: dict[str, str]
    dropped: tuple[str, ...] = ()  # the previous version's user tags that did not fit
    omitted: tuple[str, ...] = ()  # pitcrew's own tags whose value is over MAX_TAG_VALUE


def for_new_version(own: Mapping[str, str], previous: Mapping[str, str],
                    keep_first: tuple[str | None, ...] = ()) -> VersionTags:
    """The tags of a version that replaces one tagged `previous`: pitcrew's `own` tags (set
    fresh; any `pitcrew-*` tag of `previous` is not carried) and then the previous version's
    user tags, as many as fit in Key Vault's limit of MAX_TAGS (`keep_first` names, e.g. the
    hygiene owner tag, first; then the order `previous` lists them). Never more than Key Vault
    takes, so the write cannot fail for it: an own tag whose value is over MAX_TAG_VALUE
    characters is left out, never cut (a cut ARM id names another resource), and so is a user
    tag that would not fit. Names only in what is returned, never a value."""
    tags: dict[str, str] = {}
    omitted: list[str] = []
    for name, value in own.items():
        if len(str(value)) > MAX_TAG_VALUE:
            omitted.append(name)
        else:
            tags[name] = str(value)
    taken = {name.lower() for name in tags}
    first = [n.lower() for n in keep_first if n]
    user = sorted(((name, str(value)) for name, value in previous.items()
                   if not is_own(name) and name.lower() not in taken),
                  key=lambda item: first.index(item[0].lower()) if item[0].lower() in first
                  else len(first))
    dropped: list[str] = []
    for name, value in user:
        if len(tags) >= MAX_TAGS or len(value) > MAX_TAG_VALUE:
            dropped.append(name)
        else:
            tags[name] = value
    return VersionTags(tags, tuple(dropped), tuple(omitted))


@dataclass(frozen=True)
class Target:
    """The strategy that owns a secret, resolved from a policy rule or the secret's tags."""

    strategy: str
    source: str  # "policy" | "tags"
    resource: str | None = None
    hook: str | None = None
    hook_target: str | None = None
    password: PasswordPolicy = field(default_factory=PasswordPolicy)
    validity_days: float = 90.0
    restart_sites: tuple[str, ...] = ()
    consumers: tuple[tuple[str, bool], ...] = ()  # (site, restart) pairs: refreshed after promote


def is_pending(policy: RotationPolicy, secret: str) -> bool:
    """A generated credential's pending secret: nobody rotates it, its run promotes it."""
    return secret.lower().endswith(policy.pending_suffix)


def owner(
    policy: RotationPolicy, secrets: SecretStore, vault: str, secret: str,
    current: SecretVersion | None = None,
) -> Target | None:
    """Who owns the secret; None when nobody does (a person is told instead).

    A policy rule first (with `use_tags: true`, its resource, strategy and validity come from the
    sample tags); then, when `rotation.use_tags` is on, the version's pitcrew-* tags or, failing
    those, the sample tags. The current version is read from `secrets` only when tags decide
    and the caller did not pass it. Validity: ValidityPeriodDays (when tags are consulted), else
    the rule's validity_days, else rotation.validity_days. A malformed tag is an InvalidInput
    naming the tag (HTTP 400), never a crash; an unusable vault is VaultUnavailable."""
    if is_pending(policy, secret):
        return None
    rule = policy.rule_for(vault, secret)
    consult_tags = policy.use_tags if rule is None else (rule.use_tags or policy.use_tags)
    if current is None and consult_tags:
        current = secrets.latest(vault, secret)
    version_tags: Mapping[str, str] = current.tags if current is not None else {}
    tag_days = validity_days(version_tags) if consult_tags and current is not None else None
    if rule is not None:
        strategy: str | None = rule.strategy
        resource = rule.resource
        if rule.use_tags:
            if current is None:
                return None
            address = str(version_tags.get(PROVIDER_ADDRESS, "")).strip()
            if address:
                derived = strategy_for_resource(address)
                if strategy and derived != strategy:
                    raise InvalidInput(PROVIDER_ADDRESS, f"names a {derived} resource but the "
                                                         f"rule's strategy is {strategy}")
                strategy, resource = derived, address
            elif resource:
                strategy = strategy or strategy_for_resource(resource, "resource")
            else:
                raise InvalidInput(PROVIDER_ADDRESS, f"is missing on version {current.version} "
                                                     "and the rule names no resource")
            credential_slot(version_tags)  # validated; the value decides which key is held
        consumers = tuple((c.site, c.restart) for c in rule.all_consumers())
        return Target(
            strategy=str(strategy), source="tags" if rule.use_tags else "policy",
            resource=resource, hook=rule.hook, hook_target=rule.target,
            password=rule.password,
            validity_days=tag_days or rule.validity_days or policy.validity_days,
            restart_sites=tuple(site for site, restart in consumers if restart),
            consumers=consumers,
        )
    if not policy.use_tags or current is None:
        return None
    days = tag_days or policy.validity_days
    strategy = str(version_tags.get(STRATEGY, "")).strip()
    if strategy in _STRATEGY_BY_TYPE.values():
        resource = str(version_tags.get(RESOURCE, "")).strip()
        if strategy_for_resource(resource, RESOURCE) != strategy:
            raise InvalidInput(RESOURCE, f"is not a valid resource id for strategy {strategy}")
        return Target(strategy=strategy, source="tags", resource=resource, validity_days=days)
    if strategy == "generated" and version_tags.get(HOOK):
        return Target(strategy="generated", source="tags", hook=version_tags[HOOK],
                      hook_target=version_tags.get(TARGET), validity_days=days)
    if strategy == "notify":
        return Target(strategy="notify", source="tags")
    address = str(version_tags.get(PROVIDER_ADDRESS, "")).strip()
    if not strategy and address:
        credential_slot(version_tags)
        return Target(strategy=strategy_for_resource(address), source="tags",
                      resource=address, validity_days=days)
    return None
