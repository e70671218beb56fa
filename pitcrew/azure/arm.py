"""Dual-key resources through Azure Resource Manager, and site restarts.

Each provider implements the CredentialProvider port: list the two keys, regenerate one, and
prove a key with a data-plane call signed as the service requires (see DataPlane). Key values
are only ever returned to the engine: never logged, never put in an exception message.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import importlib
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote_plus

from pitcrew.registry import Registry
from pitcrew.rotation.ports import CredentialProvider, CredentialRejected, ProviderRefused

if TYPE_CHECKING:
    from azure.core.credentials import AzureNamedKeyCredential

ClientFactory = Callable[[str, str, str], Any]  # (module, class name, subscription) -> client


@dataclass(frozen=True)
class ResourceId:
    subscription: str
    resource_group: str
    names: dict[str, str]  # lower-cased type segment -> name, e.g. {"namespaces": "ns1"}
    raw: str

    @classmethod
    def parse(cls, resource_id: str) -> ResourceId:
        # azure-mgmt-core comes with every management SDK; loaded on first use (cold start).
        from azure.mgmt.core.tools import parse_resource_id

        parts = parse_resource_id("/" + resource_id.strip().strip("/"))
        if not parts.get("subscription") or not parts.get("resource_group") \
                or not parts.get("type") or not parts.get("name"):
            raise ValueError(f"{resource_id!r} is not an ARM resource id")
        names = {str(parts["type"]).lower(): str(parts["name"])}
        for n in range(1, int(parts.get("last_child_num") or 0) + 1):
            names[str(parts[f"child_type_{n}"]).lower()] = str(parts[f"child_name_{n}"])
        return cls(str(parts["subscription"]), str(parts["resource_group"]), names, resource_id)

    def name(self, segment: str) -> str | None:
        return self.names.get(segment.lower())

    @property
    def rule(self) -> str:
        return self.names["authorizationrules"]


def resource_kind(resource_id: str) -> tuple[str, str, str] | None:
    """(provider namespace, top-level type, final type) of an ARM id, lower-cased; None when
    it is not a valid ARM resource id."""
    # azure-mgmt-core comes with every management SDK; loaded on first use (cold start).
    from azure.mgmt.core.tools import is_valid_resource_id, parse_resource_id

    if not resource_id or not is_valid_resource_id(resource_id):
        return None
    parts = parse_resource_id(resource_id)
    return (str(parts.get("namespace", "")).lower(), str(parts.get("type", "")).lower(),
            str(parts.get("resource_type", "")).lower())


# Refusals that are not about the key: the run stops all the same (the key cannot be proven),
# but the alert names the real cause instead of blaming the new key.
_NOT_THE_KEY = {
    "AuthorizationFailure": "the account's network rules refused pitcrew's address",
    "KeyBasedAuthenticationNotPermitted": "shared key access is disabled on the account",
    # Cosmos DB (401, substatus 5202) and Service Bus / Event Hubs: disableLocalAuth.
    "LocalAuthDisabled": "key (local) authentication is disabled on the account or namespace",
    "FirewallBlocked": "the firewall of the account or namespace refused pitcrew's address",
}


def _rejected(service: str, status: int, code: object = None) -> CredentialRejected:
    # The Storage SDK gives a StorageErrorCode (a str enum) for the codes it knows, else a str.
    code = str(getattr(code, "value", code) or "") or None
    cause = f" ({code}: {_NOT_THE_KEY[code]})" if code in _NOT_THE_KEY else (
        f" ({code})" if code else "")
    return CredentialRejected(f"{service} answered HTTP {status}{cause} to a request signed "
                              "with the new key")


def _cosmos_code(status: int, substatus: str, body: str) -> str | None:
    """Which refusal a Cosmos DB 401/403 is: its gateway names the cause in the message (and
    local auth also by substatus 5202), not in a code of its own."""
    if status == 401 and (substatus == "5202" or "Local Authorization is disabled" in body):
        return "LocalAuthDisabled"
    if status == 403 and "firewall" in body:
        return "FirewallBlocked"
    return None


def _sas_code(detail: str) -> str | None:
    """Service Bus / Event Hubs name the cause only in the error's text: "LocalAuthDisabled:
    Authorization failed because SAS authentication has been disabled", or, from the IP
    firewall, "Ip has been prevented to connect to the endpoint"."""
    if "LocalAuthDisabled" in detail:
        return "LocalAuthDisabled"
    if "Ip has been prevented to connect" in detail:
        return "FirewallBlocked"
    return None


class DataPlane:
    """Where each service's data plane is, and how a request is signed for it.

    In Azure: https://{account}.documents.azure.com, https://{account}.blob.core.windows.net,
    https://{namespace}.servicebus.windows.net. With `local_base` (the local Azure endpoint):
    {local_base}/cosmos/{account}/, /storage/{account}/blob, /servicebus/{ns}, /eventhubs/{ns}.
    """

    def __init__(self, local_base: str | None = None, verify: str | bool = True,
                 timeout: float = 10.0) -> None:
        self.local_base = local_base.rstrip("/") if local_base else None
        self.verify = verify
        self.timeout = timeout

    def _get(self, url: str, headers: dict[str, str]) -> tuple[int, str, str]:
        """(status, x-ms-substatus, the start of the body) of a GET."""
        import httpx  # on first use (cold start)

        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str)
            else self.verify
        )
        with httpx.Client(verify=verify, timeout=self.timeout) as client:
            response = client.get(url, headers=headers)
            return (response.status_code, response.headers.get("x-ms-substatus", ""),
                    response.text[:2000])

    # --- Cosmos DB: master-key authorization ---------------------------------------------------

    def cosmos_url(self, account: str) -> str:
        if self.local_base:
            return f"{self.local_base}/cosmos/{account}/"
        return f"https://{account}.documents.azure.com/"

    def test_cosmos(self, account: str, key: str) -> None:
        """List databases (GET /dbs) signed with the key: 401/403 means the key is refused."""
        date = formatdate(usegmt=True)
        text = f"get\ndbs\n\n{date.lower()}\n\n"
        signature = base64.b64encode(
            hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()
        ).decode()
        headers = {
            "authorization": quote_plus(f"type=master&ver=1.0&sig={signature}"),
            "x-ms-date": date,
            "x-ms-version": "2018-12-31",
        }
        status, substatus, body = self._get(self.cosmos_url(account) + "dbs", headers)
        if status in (401, 403):
            raise _rejected("Cosmos DB", status, _cosmos_code(status, substatus, body))
        if not 200 <= status < 300:
            raise RuntimeError(f"Cosmos DB answered HTTP {status} to the key test")

    # --- Storage: SharedKey, through azure-storage-blob ----------------------------------------

    def blob_url(self, account: str) -> str:
        if self.local_base:
            return f"{self.local_base}/storage/{account}/blob"
        return f"https://{account}.blob.core.windows.net"

    def test_storage(self, account: str, key: str) -> None:
        """Get the blob service's properties with a SharedKey-signed request."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
        from azure.storage.blob import BlobServiceClient

        kwargs: dict[str, Any] = {}
        if self.verify is not True:
            kwargs["connection_verify"] = self.verify
        client = BlobServiceClient(
            self.blob_url(account),
            credential={"account_name": account, "account_key": key},
            retry_total=0, **kwargs,
        )
        try:
            with client:
                client.get_service_properties(timeout=int(self.timeout))
        except ClientAuthenticationError as exc:
            raise _rejected("Storage", exc.status_code or 403,
                            getattr(exc, "error_code", None)) from None
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                raise _rejected("Storage", exc.status_code,
                                getattr(exc, "error_code", None)) from None
            raise RuntimeError(f"Storage answered HTTP {exc.status_code} to the key test") from None

    # --- Service Bus / Event Hubs: SAS, with the least right the rule has ---------------------

    def namespace_url(self, service: str, namespace: str) -> str:
        if self.local_base:
            return f"{self.local_base}/{service}/{namespace}"
        return f"https://{namespace}.servicebus.windows.net"

    def test_sas(self, service: str, namespace: str, entity: str | None, rule: str,
                 key: str, rights: Sequence[str] = ("Listen", "Send", "Manage"),
                 entity_kind: str | None = None) -> str:
        """Prove a Service Bus / Event Hubs rule's key with the least right the rule has, without
        a side effect; returns the right used. See `sas_test_right` and docs/rotation.md.

        In Azure the Listen and Send tests run over AMQP through the SDKs with an
        AzureNamedKeyCredential (Listen: peek one message, which neither locks nor removes it;
        Send: open a sender link, which authenticates and attaches, and send nothing). The local
        endpoint speaks HTTPS only, so against it the same rights are checked through Service
        Bus REST calls that need the same claim: peek-lock with timeout=0 on a queue that is
        always empty there (Listen) and an empty batch, refused after the claim check (Send).
        Those REST forms are never used against Azure: there a peek-lock would lock a message and
        a REST send would send."""
        from azure.core.credentials import AzureNamedKeyCredential  # SDK on first use (cold start)

        label = "Event Hubs" if service == "eventhubs" else "Service Bus"
        right = sas_test_right(service, entity, entity_kind, rights)
        credential = AzureNamedKeyCredential(rule, key)
        if right == "Manage" or self.local_base:
            self._sas_over_https(service, namespace, entity, credential, right, label)
        elif service == "servicebus":
            self._servicebus_amqp(namespace, entity or "", entity_kind, credential, right)
        else:
            self._eventhubs_amqp(namespace, entity or "", credential, right)
        return right

    def _sas_header(self, audience: str, credential: AzureNamedKeyCredential) -> str:
        # The SDK's own SAS generation from an AzureNamedKeyCredential (what ServiceBusClient and
        # ServiceBusAdministrationClient send), not a hand-built token.
        from azure.servicebus._base_handler import ServiceBusAzureNamedKeyTokenCredential

        return str(ServiceBusAzureNamedKeyTokenCredential(credential).get_token(audience).token)

    def _sas_over_https(self, service: str, namespace: str, entity: str | None,
                        credential: AzureNamedKeyCredential, right: str, label: str) -> None:
        import httpx  # on first use (cold start)

        base = self.namespace_url(service, namespace)
        audience = f"{base}/{entity}" if entity else base
        headers = {"Authorization": self._sas_header(audience, credential)}
        if right == "Manage":  # a management read: the entity's (or the namespace's) description
            kind = "eventhubs" if service == "eventhubs" else "queues"
            url = f"{base}/{entity}" if entity else f"{base}/$Resources/{kind}"
            method, content = "GET", None
        elif right == "Listen":
            url, method, content = f"{audience}/messages/head?timeout=0", "POST", None
        else:
            url, method, content = f"{audience}/messages", "POST", b"[]"
            headers["Content-Type"] = "application/vnd.microsoft.servicebus.json"
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str)
            else self.verify
        )
        with httpx.Client(verify=verify, timeout=self.timeout) as client:
            response = client.request(method, url, headers=headers, content=content)
        status = response.status_code
        if status in (401, 403):
            raise _rejected(label, status, _sas_code(response.text[:2000]))
        # The Send check's empty batch is refused (400) only after the Send claim was accepted.
        if not (200 <= status < 300 or (right == "Send" and status == 400)):
            raise RuntimeError(f"{label} answered HTTP {status} to the key test")

    def _servicebus_amqp(self, namespace: str, entity: str, entity_kind: str | None,
                         credential: AzureNamedKeyCredential, right: str) -> None:
        from azure.servicebus import ServiceBusClient  # SDK on first use (cold start)
        from azure.servicebus.exceptions import (
            ServiceBusAuthenticationError,
            ServiceBusAuthorizationError,
        )

        client = ServiceBusClient(f"{namespace}.servicebus.windows.net", credential,
                                  retry_total=0)
        try:
            with client:
                if right == "Listen":  # queues only (a topic's Listen needs a subscription)
                    with client.get_queue_receiver(entity) as receiver:
                        receiver.peek_messages(max_message_count=1)
                else:
                    sender = (client.get_topic_sender(entity) if entity_kind == "topics"
                              else client.get_queue_sender(entity))
                    with sender:
                        sender.create_message_batch()  # opens the link; sends nothing
        except (ServiceBusAuthenticationError, ServiceBusAuthorizationError) as exc:
            code = _sas_code(str(exc))
            cause = f", {code}: {_NOT_THE_KEY[code]}" if code else ""
            raise CredentialRejected(f"Service Bus refused the new key ({right} test: "
                                     f"{type(exc).__name__}{cause})") from None

    def _eventhubs_amqp(self, namespace: str, eventhub: str,
                        credential: AzureNamedKeyCredential, right: str) -> None:
        try:
            from azure.eventhub import EventHubConsumerClient, EventHubProducerClient
            from azure.eventhub.exceptions import AuthenticationError, ConnectError
        except ImportError:
            raise RuntimeError(
                "the Event Hubs key test of a rule without Manage needs the azure-eventhub "
                "package (AMQP); install it, or rotate a rule with Manage"
            ) from None
        host = f"{namespace}.servicebus.windows.net"
        try:
            if right == "Listen":
                with EventHubConsumerClient(
                    fully_qualified_namespace=host, eventhub_name=eventhub,
                    consumer_group="$Default", credential=credential, retry_total=0,
                ) as consumer:
                    consumer.get_eventhub_properties()
            else:
                with EventHubProducerClient(
                    fully_qualified_namespace=host, eventhub_name=eventhub,
                    credential=credential, retry_total=0,
                ) as producer:
                    producer.create_batch()  # opens the sender link; sends nothing
        except (AuthenticationError, ConnectError) as exc:
            if isinstance(exc, ConnectError) and "nauthori" not in str(exc):
                raise RuntimeError(f"Event Hubs key test could not connect "
                                   f"({type(exc).__name__})") from None
            code = _sas_code(str(exc))
            cause = f", {code}: {_NOT_THE_KEY[code]}" if code else ""
            raise CredentialRejected(f"Event Hubs refused the new key ({right} test: "
                                     f"{type(exc).__name__}{cause})") from None


def sas_test_right(service: str, entity: str | None, entity_kind: str | None,
                   rights: Sequence[str]) -> str:
    """The right a Service Bus / Event Hubs key test uses: Listen (a peek reads nothing away),
    else Send (a sender link sends nothing); Manage only for a namespace-level rule, whose
    Listen/Send tests would need an entity. Raises ValueError when the rule cannot be tested."""
    have = {str(getattr(r, "value", r)).lower() for r in rights}
    where = f"entity {entity}" if entity else "the namespace"
    if entity is None:
        if "manage" in have:
            return "Manage"
        raise ValueError(
            "a namespace-level rule without Manage cannot be tested without an entity: rotate an "
            "entity-level rule (queue, topic or event hub) or give the rule Manage")
    if "listen" in have and not (service == "servicebus" and entity_kind == "topics"):
        return "Listen"
    if "send" in have:
        return "Send"
    raise ValueError(f"the rule has no right pitcrew can test on {where} without a side effect "
                     f"(rights: {sorted(have) or 'none'}); a topic's Listen needs a subscription")


ProviderFactory = Callable[[ClientFactory, DataPlane], CredentialProvider]
# Dual-key strategy name -> the provider class that serves it.
PROVIDERS: Registry[ProviderFactory] = Registry("credential provider")
_P = TypeVar("_P", bound="_ArmProvider")


def _registered(cls: type[_P]) -> type[_P]:
    """Register a provider class under its strategy name, its control-plane calls answering
    ARM's refusals that no retry fixes as ProviderRefused."""
    for name in ("list_keys", "regenerate", "rights"):
        method = getattr(cls, name, None)
        if method is not None and not getattr(method, "names_arm_refusals", False):
            setattr(cls, name, _refusals_named(method))
    PROVIDERS.add(cls.strategy, cls)  # type: ignore[arg-type]  # each subclass is a provider
    return cls


_ACTION = re.compile(r"perform action '([^']{1,200})'")


def _refusals_named(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, resource_id: str, *args: Any, **kwargs: Any) -> Any:
        from azure.core.exceptions import HttpResponseError  # SDK on first use (cold start)

        try:
            return method(self, resource_id, *args, **kwargs)
        except HttpResponseError as exc:
            refused = _arm_refusal(exc, resource_id)
            if refused is None:
                raise
            raise refused from None

    call.names_arm_refusals = True  # type: ignore[attr-defined]
    return call


def _arm_refusal(exc: Any, resource_id: str) -> ProviderRefused | None:
    """ARM's answers that only a person can change: AuthorizationFailed (no role covers the
    action) and ScopeLocked (a ReadOnly lock, which also blocks listKeys)."""
    error = getattr(exc, "error", None)
    code = str(getattr(error, "code", "") or "")
    message = str(getattr(error, "message", "") or exc.message or "")
    if exc.status_code == 403 and code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        action = _ACTION.search(message)
        # Short, the advice first: the run's outcome keeps the start of a long message.
        return ProviderRefused(
            f"ARM refused pitcrew ({code}: no role allows "
            f"{action.group(1) if action else 'this action'}): grant the strategy's role on "
            "the resource (docs/deploy.md), then retry the rotation")
    if exc.status_code == 409 and code == "ScopeLocked":
        return ProviderRefused(
            "ARM refused the call (ScopeLocked: a ReadOnly lock on the resource or its group, "
            "which also blocks listing and regenerating keys): lift it, then retry the rotation")
    return None


class _ArmProvider:
    strategy = ""
    key_slots: tuple[str, str] = ("", "")
    module = ""
    client_class = ""

    def __init__(self, client_for: ClientFactory, data_plane: DataPlane) -> None:
        self._client_for = client_for
        self._data_plane = data_plane

    def _client(self, rid: ResourceId) -> Any:
        return self._client_for(self.module, self.client_class, rid.subscription)


@_registered
class CosmosKeys(_ArmProvider):
    strategy = "cosmos-keys"
    key_slots = ("primaryMasterKey", "secondaryMasterKey")
    module, client_class = "azure.mgmt.cosmosdb", "CosmosDBManagementClient"
    _kinds = {"primaryMasterKey": "primary", "secondaryMasterKey": "secondary"}

    def list_keys(self, resource_id: str) -> dict[str, str]:
        rid = ResourceId.parse(resource_id)
        keys = self._client(rid).database_accounts.list_keys(
            rid.resource_group, rid.name("databaseAccounts"))
        return {"primaryMasterKey": keys.primary_master_key,
                "secondaryMasterKey": keys.secondary_master_key}

    def regenerate(self, resource_id: str, slot: str) -> None:
        from azure.mgmt.cosmosdb.models import DatabaseAccountRegenerateKeyParameters

        rid = ResourceId.parse(resource_id)
        self._client(rid).database_accounts.begin_regenerate_key(
            rid.resource_group, rid.name("databaseAccounts"),
            DatabaseAccountRegenerateKeyParameters(key_kind=self._kinds[slot]),
        ).result()

    def test(self, resource_id: str, slot: str, value: str) -> None:
        self._data_plane.test_cosmos(ResourceId.parse(resource_id).names["databaseaccounts"],
                                     value)


@_registered
class StorageKeys(_ArmProvider):
    strategy = "storage-keys"
    key_slots = ("key1", "key2")
    module, client_class = "azure.mgmt.storage", "StorageManagementClient"

    def list_keys(self, resource_id: str) -> dict[str, str]:
        rid = ResourceId.parse(resource_id)
        result = self._client(rid).storage_accounts.list_keys(
            rid.resource_group, rid.name("storageAccounts"))
        # azure-mgmt-storage >= 22 models are mappings: `.keys` is the dict method there.
        listed = getattr(result, "keys_property", None)
        if listed is None or callable(listed):
            listed = result["keys"] if hasattr(result, "__getitem__") else result.keys
        return {k.key_name: k.value for k in listed if k.key_name in self.key_slots}

    def regenerate(self, resource_id: str, slot: str) -> None:
        from azure.mgmt.storage.models import StorageAccountRegenerateKeyParameters

        rid = ResourceId.parse(resource_id)
        self._client(rid).storage_accounts.regenerate_key(
            rid.resource_group, rid.name("storageAccounts"),
            StorageAccountRegenerateKeyParameters(key_name=slot),
        )

    def test(self, resource_id: str, slot: str, value: str) -> None:
        self._data_plane.test_storage(ResourceId.parse(resource_id).names["storageaccounts"],
                                      value)


class _RuleKeys(_ArmProvider):
    key_slots = ("primaryKey", "secondaryKey")
    service = ""
    entity_segments: tuple[tuple[str, str], ...] = ()  # (id segment, operations attribute)

    def _operations(self, rid: ResourceId) -> tuple[Any, list[str]]:
        client = self._client(rid)
        args = [rid.resource_group, rid.names["namespaces"]]
        for segment, attribute in self.entity_segments:
            if segment in rid.names:
                return getattr(client, attribute), [*args, rid.names[segment], rid.rule]
        return client.namespaces, [*args, rid.rule]

    def _entity(self, rid: ResourceId) -> str | None:
        return next((rid.names[s] for s, _ in self.entity_segments if s in rid.names), None)

    def _entity_kind(self, rid: ResourceId) -> str | None:
        return next((s for s, _ in self.entity_segments if s in rid.names), None)

    def rights(self, resource_id: str) -> list[str]:
        """The rule's rights (Listen / Send / Manage), read through ARM."""
        operations, args = self._operations(ResourceId.parse(resource_id))
        rule = operations.get_authorization_rule(*args)
        return [str(getattr(r, "value", r)) for r in (rule.rights or [])]

    def list_keys(self, resource_id: str) -> dict[str, str]:
        operations, args = self._operations(ResourceId.parse(resource_id))
        keys = operations.list_keys(*args)
        return {"primaryKey": keys.primary_key, "secondaryKey": keys.secondary_key}

    def regenerate(self, resource_id: str, slot: str) -> None:
        models = importlib.import_module(f"{self.module}.models")
        operations, args = self._operations(ResourceId.parse(resource_id))
        key_type = "PrimaryKey" if slot == "primaryKey" else "SecondaryKey"
        operations.regenerate_keys(*args, models.RegenerateAccessKeyParameters(key_type=key_type))

    def test(self, resource_id: str, slot: str, value: str) -> None:
        rid = ResourceId.parse(resource_id)
        self._data_plane.test_sas(self.service, rid.names["namespaces"], self._entity(rid),
                                  rid.rule, value, rights=self.rights(resource_id),
                                  entity_kind=self._entity_kind(rid))


@_registered
class ServiceBusKeys(_RuleKeys):
    strategy = "servicebus-keys"
    module, client_class = "azure.mgmt.servicebus", "ServiceBusManagementClient"
    service = "servicebus"
    entity_segments = (("queues", "queues"), ("topics", "topics"))


@_registered
class EventHubsKeys(_RuleKeys):
    strategy = "eventhubs-keys"
    module, client_class = "azure.mgmt.eventhub", "EventHubManagementClient"
    service = "eventhubs"
    entity_segments = (("eventhubs", "event_hubs"),)


# The refresh action is not in azure-mgmt-web (11.x has only the GETs of configreferences), so it
# goes through the management client's own pipeline (its credential, retries and base_url). The
# API version is the one App Service documents for this call.
KV_REFERENCE_REFRESH_API_VERSION = "2022-03-01"


class SiteRestarts:
    """Consumer sites (App Service / Function App) that read a rotated secret as a Key Vault
    reference: re-read their references, and restart them where the policy asks."""

    def __init__(self, client_for: ClientFactory) -> None:
        self._client_for = client_for

    def _web(self, rid: ResourceId) -> Any:
        return self._client_for("azure.mgmt.web", "WebSiteManagementClient", rid.subscription)

    def restart(self, site_id: str) -> None:
        rid = ResourceId.parse(site_id)
        self._web(rid).web_apps.restart(rid.resource_group, rid.names["sites"])

    def refresh_references(self, site_id: str) -> None:
        """POST {site}/config/configreferences/appsettings/refresh: App Service re-resolves the
        site's Key Vault references now (a restart alone does not reliably do it)."""
        from azure.core.exceptions import HttpResponseError  # SDK on first use (cold start)
        from azure.core.rest import HttpRequest

        rid = ResourceId.parse(site_id)
        url = (f"/subscriptions/{rid.subscription}/resourceGroups/{rid.resource_group}/providers/"
               f"Microsoft.Web/sites/{rid.names['sites']}/config/configreferences/appsettings/"
               "refresh")
        request = HttpRequest("POST", url, params={"api-version": KV_REFERENCE_REFRESH_API_VERSION})
        response = self._web(rid).send_request(request)
        if not 200 <= response.status_code < 300:
            raise HttpResponseError(response=response)


def providers(client_for: ClientFactory, data_plane: DataPlane) -> dict[str, CredentialProvider]:
    """One provider of each registered dual-key strategy."""
    return {name: make(client_for, data_plane) for name, make in PROVIDERS.items()}
