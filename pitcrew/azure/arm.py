"""Dual-key resources through Azure Resource Manager, and site restarts.

Each provider implements the CredentialProvider port: list the two keys, regenerate one, and
prove a key with a data-plane call signed as the service requires (see DataPlane). Key values
are only ever returned to the engine: never logged, never put in an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import quote_plus

from pitcrew.rotation.ports import CredentialRejected

ClientFactory = Callable[[str, str, str], Any]  # (module, class name, subscription) -> client


@dataclass(frozen=True)
class ResourceId:
    subscription: str
    resource_group: str
    names: dict[str, str]  # lower-cased type segment -> name, e.g. {"namespaces": "ns1"}
    raw: str

    @classmethod
    def parse(cls, resource_id: str) -> ResourceId:
        parts = resource_id.strip().strip("/").split("/")
        lowered = [p.lower() for p in parts]
        try:
            subscription = parts[lowered.index("subscriptions") + 1]
            group = parts[lowered.index("resourcegroups") + 1]
            provider_at = lowered.index("providers") + 2
        except (ValueError, IndexError):
            raise ValueError(f"{resource_id!r} is not an ARM resource id") from None
        tail = parts[provider_at:]
        names = {tail[i].lower(): tail[i + 1] for i in range(0, len(tail) - 1, 2)}
        return cls(subscription, group, names, resource_id)

    def name(self, segment: str) -> str | None:
        return self.names.get(segment.lower())

    @property
    def rule(self) -> str:
        return self.names["authorizationrules"]


def _rejected(service: str, status: int) -> CredentialRejected:
    return CredentialRejected(f"{service} answered HTTP {status} to a request signed with the "
                              "new key")


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

    def _get(self, url: str, headers: dict[str, str]) -> int:
        import ssl

        import httpx

        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str)
            else self.verify
        )
        with httpx.Client(verify=verify, timeout=self.timeout) as client:
            return client.get(url, headers=headers).status_code

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
        status = self._get(self.cosmos_url(account) + "dbs", headers)
        if status in (401, 403):
            raise _rejected("Cosmos DB", status)
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
            raise _rejected("Storage", exc.status_code or 403) from None
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                raise _rejected("Storage", exc.status_code) from None
            raise RuntimeError(f"Storage answered HTTP {exc.status_code} to the key test") from None

    # --- Service Bus / Event Hubs: SAS ---------------------------------------------------------

    def namespace_url(self, service: str, namespace: str) -> str:
        if self.local_base:
            return f"{self.local_base}/{service}/{namespace}"
        return f"https://{namespace}.servicebus.windows.net"

    def test_sas(self, service: str, namespace: str, entity: str | None, rule: str,
                 key: str) -> None:
        """Read the entity's description (or, for a namespace rule, the namespace's entity
        list) with a SAS token signed by the key. In Azure this needs a rule with Manage rights."""
        base = self.namespace_url(service, namespace)
        if entity:
            url = f"{base}/{entity}"
        else:
            url = f"{base}/$Resources/{'eventhubs' if service == 'eventhubs' else 'queues'}"
        resource = quote_plus(f"{base}/{entity}" if entity else base)
        expiry = int(time.time()) + 300
        signature = base64.b64encode(
            hmac.new(key.encode(), f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
        ).decode()
        token = (f"SharedAccessSignature sr={resource}&sig={quote_plus(signature)}"
                 f"&se={expiry}&skn={quote_plus(rule)}")
        status = self._get(url, {"Authorization": token})
        label = "Event Hubs" if service == "eventhubs" else "Service Bus"
        if status in (401, 403):
            raise _rejected(label, status)
        if not 200 <= status < 300:
            raise RuntimeError(f"{label} answered HTTP {status} to the key test")


class _ArmProvider:
    module = ""
    client_class = ""

    def __init__(self, client_for: ClientFactory, data_plane: DataPlane) -> None:
        self._client_for = client_for
        self._data_plane = data_plane

    def _client(self, rid: ResourceId) -> Any:
        return self._client_for(self.module, self.client_class, rid.subscription)


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

    def list_keys(self, resource_id: str) -> dict[str, str]:
        operations, args = self._operations(ResourceId.parse(resource_id))
        keys = operations.list_keys(*args)
        return {"primaryKey": keys.primary_key, "secondaryKey": keys.secondary_key}

    def regenerate(self, resource_id: str, slot: str) -> None:
        import importlib

        models = importlib.import_module(f"{self.module}.models")
        operations, args = self._operations(ResourceId.parse(resource_id))
        key_type = "PrimaryKey" if slot == "primaryKey" else "SecondaryKey"
        operations.regenerate_keys(*args, models.RegenerateAccessKeyParameters(key_type=key_type))

    def test(self, resource_id: str, slot: str, value: str) -> None:
        rid = ResourceId.parse(resource_id)
        self._data_plane.test_sas(self.service, rid.names["namespaces"], self._entity(rid),
                                  rid.rule, value)


class ServiceBusKeys(_RuleKeys):
    strategy = "servicebus-keys"
    module, client_class = "azure.mgmt.servicebus", "ServiceBusManagementClient"
    service = "servicebus"
    entity_segments = (("queues", "queues"), ("topics", "topics"))


class EventHubsKeys(_RuleKeys):
    strategy = "eventhubs-keys"
    module, client_class = "azure.mgmt.eventhub", "EventHubManagementClient"
    service = "eventhubs"
    entity_segments = (("eventhubs", "event_hubs"),)


class SiteRestarts:
    """Restart App Service / Function App sites so they re-read Key Vault references."""

    def __init__(self, client_for: ClientFactory) -> None:
        self._client_for = client_for

    def restart(self, site_id: str) -> None:
        rid = ResourceId.parse(site_id)
        client = self._client_for("azure.mgmt.web", "WebSiteManagementClient", rid.subscription)
        client.web_apps.restart(rid.resource_group, rid.names["sites"])


def providers(client_for: ClientFactory, data_plane: DataPlane) -> dict[str, Any]:
    return {p.strategy: p(client_for, data_plane)
            for p in (CosmosKeys, StorageKeys, ServiceBusKeys, EventHubsKeys)}
