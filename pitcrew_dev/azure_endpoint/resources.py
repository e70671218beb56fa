"""ARM resource kinds the endpoint serves: how their ids look and which keys each holds.

ARM ids are case-insensitive (the SDKs even disagree: Service Bus uses `AuthorizationRules`,
Event Hubs `authorizationRules`), so lookups go through `canonical_id`.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum


class ResourceKind(StrEnum):
    COSMOS_ACCOUNT = "Microsoft.DocumentDB/databaseAccounts"
    STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
    SERVICEBUS_RULE = "Microsoft.ServiceBus/authorizationRules"
    EVENTHUB_RULE = "Microsoft.EventHub/authorizationRules"
    WEB_SITE = "Microsoft.Web/sites"


@dataclass(frozen=True)
class KindSpec:
    kind: ResourceKind
    pattern: re.Pattern[str]
    key_names: tuple[str, ...]
    key_bytes: int  # random bytes behind each base64 key, as the real service issues them


_PREFIX = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
_SEG = r"[^/]+"

SPECS: tuple[KindSpec, ...] = (
    KindSpec(
        ResourceKind.COSMOS_ACCOUNT,
        re.compile(_PREFIX + rf"Microsoft\.DocumentDB/databaseAccounts/{_SEG}$", re.I),
        (
            "primaryMasterKey",
            "secondaryMasterKey",
            "primaryReadonlyMasterKey",
            "secondaryReadonlyMasterKey",
        ),
        64,
    ),
    KindSpec(
        ResourceKind.STORAGE_ACCOUNT,
        re.compile(_PREFIX + rf"Microsoft\.Storage/storageAccounts/{_SEG}$", re.I),
        ("key1", "key2"),
        64,
    ),
    KindSpec(
        ResourceKind.SERVICEBUS_RULE,
        # Namespace-level rules and queue/topic-level rules.
        re.compile(
            _PREFIX + rf"Microsoft\.ServiceBus/namespaces/{_SEG}"
            rf"(/(queues|topics)/{_SEG})?/authorizationRules/{_SEG}$",
            re.I,
        ),
        ("primaryKey", "secondaryKey"),
        32,
    ),
    KindSpec(
        ResourceKind.EVENTHUB_RULE,
        re.compile(
            _PREFIX + rf"Microsoft\.EventHub/namespaces/{_SEG}(/eventhubs/{_SEG})?"
            rf"/authorizationRules/{_SEG}$",
            re.I,
        ),
        ("primaryKey", "secondaryKey"),
        32,
    ),
    KindSpec(
        ResourceKind.WEB_SITE,
        re.compile(_PREFIX + rf"Microsoft\.Web/sites/{_SEG}$", re.I),
        (),
        0,
    ),
)


# Service Bus / Event Hubs authorization rule rights. Azure requires Manage to come with Listen and
# Send; a rule without a `rights` seed gets all three (as RootManageSharedAccessKey has).
RULE_RIGHTS: tuple[str, ...] = ("Listen", "Send", "Manage")
RULE_KINDS = (ResourceKind.SERVICEBUS_RULE, ResourceKind.EVENTHUB_RULE)


def check_rights(kind: ResourceKind, rights: list[str] | None) -> list[str]:
    """The rights a resource gets: validated for rules (as ARM validates them), none otherwise."""
    if kind not in RULE_KINDS:
        if rights:
            raise ValueError(f"{kind.value} resources have no rights; only authorization rules do")
        return []
    if rights is None:
        return list(RULE_RIGHTS)
    by_lower = {r.lower(): r for r in RULE_RIGHTS}
    unknown = [r for r in rights if str(r).lower() not in by_lower]
    if unknown or not rights:
        raise ValueError(f"rights must be a non-empty subset of {list(RULE_RIGHTS)}")
    chosen = [r for r in RULE_RIGHTS if r.lower() in {str(x).lower() for x in rights}]
    if "Manage" in chosen and len(chosen) != 3:
        raise ValueError("a rule with Manage must also have Listen and Send (as in Azure)")
    return chosen


def canonical_id(resource_id: str) -> str:
    return "/" + resource_id.strip().strip("/").lower()


def spec_for(resource_id: str) -> KindSpec | None:
    path = "/" + resource_id.strip().strip("/")
    return next((spec for spec in SPECS if spec.pattern.match(path)), None)


def spec_of(kind: ResourceKind) -> KindSpec:
    return next(spec for spec in SPECS if spec.kind is kind)


def new_key(spec: KindSpec) -> str:
    return base64.b64encode(secrets.token_bytes(spec.key_bytes)).decode()


def resource_name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def namespace_of(resource_id: str) -> str:
    """The Service Bus / Event Hubs namespace name of an authorization rule id."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("namespaces") + 1]


def entity_of(resource_id: str) -> str | None:
    """The queue, topic or event hub a rule belongs to, or None for a namespace-level rule."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    for marker in ("queues", "topics", "eventhubs"):
        if marker in lowered:
            return parts[lowered.index(marker) + 1]
    return None


def account_of(resource_id: str) -> str:
    """The account name of a Cosmos DB or Storage resource id."""
    return resource_name(resource_id)
