"""Settings and lazy, cached SDK clients: one DefaultAzureCredential per process.

Nothing here imports an Azure SDK at module import time; the function app indexes without them
and each client is built on first use, then reused across invocations.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from pitcrew.azure.tables.groupcommit import GroupCommitTable
from pitcrew.errors import ConfigurationError
from pitcrew.policy import Policy, load_policy

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient, TableServiceClient

    from pitcrew.policy import Policy

APP_ROOT = Path(__file__).resolve().parents[1]
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
# Azurite's well-known, public development account: not a secret. What
# `UseDevelopmentStorage=true` means, spelled out because the SDKs don't expand it.
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_connection_string(host: str = "127.0.0.1") -> str:
    account = AZURITE_ACCOUNT_NAME
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:10000/{account};"
        f"QueueEndpoint=http://{host}:10001/{account};"
        f"TableEndpoint=http://{host}:10002/{account};"
    )

T = TypeVar("T")

DEFAULT_SERVICEBUS_SUFFIX = "servicebus.windows.net"
SDK_HTTP_LOGGING_SETTING = "PITCREW_SDK_HTTP_LOGGING"
SDK_HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"
_FLAGS = {"": False, "false": False, "0": False, "no": False,
          "true": True, "1": True, "yes": True}
_DNS_SUFFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}"
                         r"[a-z0-9])?)+$")
_NAMESPACE_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,48}[a-z0-9])?$")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Settings:
    """The app settings pitcrew reads, from the environment (app settings in Azure)."""

    storage_connection_string: str | None
    storage_account_name: str | None
    storage_table_endpoint: str | None
    storage_client_id: str | None
    table_prefix: str
    policy_path: Path
    managed_identity_client_id: str | None
    # The cloud's Service Bus DNS suffix (servicebus.chinacloudapi.cn, servicebus.usgovcloudapi.net
    # in sovereign clouds): every namespace pitcrew connects to is a name under it.
    servicebus_suffix: str = DEFAULT_SERVICEBUS_SUFFIX
    # PITCREW_SDK_HTTP_LOGGING=true: azure-core logs every request and answer (troubleshooting).
    sdk_http_logging: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        connection = env.get("AzureWebJobsStorage", "").strip() or None
        if connection == DEVELOPMENT_STORAGE:
            connection = azurite_connection_string()
        prefix = env.get("PITCREW_TABLE_PREFIX", "pitcrew").strip() or "pitcrew"
        if not prefix.isalnum() or not prefix[0].isalpha() or len(prefix) > 40:
            raise ConfigurationError(
                f"PITCREW_TABLE_PREFIX={prefix!r}: use letters and digits, starting with a letter"
            )
        suffix = (env.get("PITCREW_SERVICEBUS_SUFFIX", "").strip().strip(".").lower()
                  or DEFAULT_SERVICEBUS_SUFFIX)
        if not _DNS_SUFFIX.match(suffix):
            raise ConfigurationError(
                f"PITCREW_SERVICEBUS_SUFFIX={suffix[:100]!r}: give a DNS suffix such as "
                f"{DEFAULT_SERVICEBUS_SUFFIX}"
            )
        raw_logging = env.get(SDK_HTTP_LOGGING_SETTING, "").strip().lower()
        if raw_logging not in _FLAGS:
            raise ConfigurationError(
                f"{SDK_HTTP_LOGGING_SETTING}={raw_logging[:20]!r}: give true or false")
        policy = env.get("PITCREW_POLICY_PATH", "").strip() or "pitcrew.yaml"
        policy_path = Path(policy)
        if not policy_path.is_absolute():
            policy_path = APP_ROOT / policy_path
        return cls(
            storage_connection_string=connection,
            storage_account_name=env.get("AzureWebJobsStorage__accountName", "").strip() or None,
            storage_table_endpoint=env.get("AzureWebJobsStorage__tableServiceUri", "").strip()
            or None,
            storage_client_id=env.get("AzureWebJobsStorage__clientId", "").strip() or None,
            table_prefix=prefix,
            policy_path=policy_path,
            managed_identity_client_id=env.get("AZURE_CLIENT_ID", "").strip() or None,
            servicebus_suffix=suffix,
            sdk_http_logging=_FLAGS[raw_logging],
        )

    @property
    def table_endpoint(self) -> str:
        if self.storage_table_endpoint:
            return self.storage_table_endpoint
        if self.storage_account_name:
            return f"https://{self.storage_account_name}.table.core.windows.net"
        raise ConfigurationError(
            "storage is not configured: set AzureWebJobsStorage__accountName (managed identity, "
            "in Azure) or AzureWebJobsStorage (a connection string, locally)"
        )


# A delivery's events run 16 at a time (pitcrew.intake.api.BATCH_CONCURRENCY) over one Storage
# client each: with requests' default pool of 10 connections the rest are opened and dropped
# on every request.
STORAGE_POOL_CONNECTIONS = 32


def pooled_transport() -> Any:
    """azure-core's requests transport (its own settings: no urllib3 retries, the SDK's retry
    policy retries) with a connection pool as large as the concurrency pitcrew uses, and the
    environment's proxy and CA settings decided when the transport is built (see
    `_environment_session`), not re-read on every request."""
    import requests  # with the SDK, on first use (cold start)
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    session = _environment_session()()
    adapter = requests.adapters.HTTPAdapter(
        pool_maxsize=STORAGE_POOL_CONNECTIONS,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return RequestsTransport(session=session, session_owner=True)


# Origins whose proxy decision one session keeps: pitcrew's Storage clients reach a handful
# (one account's table, queue and blob endpoints, a few replay targets); past this the cache
# starts over rather than grow with hosts nobody configured.
_PROXY_ORIGINS = 64


@functools.cache
def _environment_session() -> type:
    """A requests.Session class that reads the environment once, not on every request.

    With `trust_env` (requests' default) every request re-reads the proxy variables (walking
    all of os.environ, which in a Function App holds every app setting, several times), the CA
    bundle variables and ~/.netrc: 10-20% of the CPU a queue send costs (measured beside
    Azurite, bench/replay.py). This session turns `trust_env` off and does the same once instead:
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are read when it is built, and an origin's proxy
    (HTTP(S)_PROXY / ALL_PROXY, NO_PROXY honoured) is decided by requests' own rules the first
    time the session reaches that origin, then kept. A changed environment reaches clients
    built after the change (tests, `reset_runtime()`). ~/.netrc is not consulted: every Azure
    SDK request carries its own Authorization (shared key, SAS or token), which a netrc entry
    would only overwrite. Built on first use: requests is imported with the SDK (cold start)."""
    import requests
    from requests.utils import get_environ_proxies

    class EnvironmentOnceSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.trust_env = False  # the environment is read below, once
            env = os.environ
            self.environment_verify: str | None = (
                env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or None)
            self._origins: dict[tuple[str, str | None], dict[str, str]] = {}
            self._origins_lock = threading.Lock()

        def environment_proxies(self, url: str, no_proxy: str | None = None) -> dict[str, str]:
            """What requests' trust_env would add for `url` (empty when NO_PROXY matches or
            no proxy is set), decided once per origin."""
            parts = urlsplit(url)
            key = (f"{parts.scheme}://{parts.netloc}", no_proxy)
            with self._origins_lock:
                found = self._origins.get(key)
            if found is None:
                found = dict(get_environ_proxies(key[0], no_proxy=no_proxy))
                with self._origins_lock:
                    if len(self._origins) >= _PROXY_ORIGINS:
                        self._origins.clear()
                    self._origins[key] = found
            return found

        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                       cert: Any) -> dict[str, Any]:
            # requests' trust_env branch, from what was read once.
            if proxies is not None:
                for scheme, proxy in self.environment_proxies(url, proxies.get("no_proxy")).items():
                    proxies.setdefault(scheme, proxy)
            if (verify is True or verify is None) and self.environment_verify:
                verify = self.environment_verify
            return super().merge_environment_settings(url, proxies, stream, verify, cert)

    return EnvironmentOnceSession


def quiet_sdk_http_logging(settings: Settings) -> None:
    """azure-core's HttpLoggingPolicy writes every request and every answer (URL, each
    header) at INFO, the level a Function App logs at: two records per Storage call, shipped
    to Application Insights (paid for by the GB) beside pitcrew's own, and about 0.5 ms of
    CPU per call measured here (20 % of a Table insert's). They stay at WARNING unless
    PITCREW_SDK_HTTP_LOGGING=true asks for them while troubleshooting.

    httpx (the receivers' client) logs every request's full URL at INFO, and a receiver's URL
    is its secret (a Slack or Teams webhook's token, a `sig=`): held at WARNING always, even
    while troubleshooting."""
    logger = logging.getLogger(SDK_HTTP_LOGGER)
    logger.setLevel(logging.NOTSET if settings.sdk_http_logging else logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


class Runtime:
    """Process-wide state: settings, the credential, SDK clients and the loaded policy.

    Built once per worker process and reused by every invocation; `reset_runtime()` drops it
    (tests, or after settings change).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        quiet_sdk_http_logging(settings)
        self._lock = threading.RLock()
        self._cache: dict[str, Any] = {}
        self._policy: tuple[float, Policy] | None = None
        # Benches only (never set by the product): builds the azure-core transport each Storage
        # client (tables, blobs, queues) sends through, e.g. one counting round trips.
        self.storage_transport: Callable[[], Any] | None = None

    def storage_client_kwargs(self) -> dict[str, Any]:
        return {"transport": (self.storage_transport or pooled_transport)()}

    def cached(self, key: str, build: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]  # type: ignore[no-any-return,unused-ignore]

    @cached_property
    def credential(self) -> TokenCredential:
        from azure.identity import DefaultAzureCredential  # SDK on first use (cold start)

        client_id = self.settings.managed_identity_client_id or self.settings.storage_client_id
        return DefaultAzureCredential(managed_identity_client_id=client_id)

    def table_service(self) -> TableServiceClient:
        def build() -> TableServiceClient:
            from azure.data.tables import TableServiceClient  # SDK on first use (cold start)

            if self.settings.storage_connection_string:
                return TableServiceClient.from_connection_string(
                    self.settings.storage_connection_string, **self.storage_client_kwargs()
                )
            return TableServiceClient(
                endpoint=self.settings.table_endpoint, credential=self.credential,
                **self.storage_client_kwargs(),
            )

        return self.cached("table_service", build)

    def shared_table(self, suffix: str) -> TableClient:
        """`table(suffix)` for rows in partitions that every request writes (claims, alert
        groups, the outbox, the audit log): concurrent single-row writes to one partition share
        a transaction (pitcrew.azure.tables.groupcommit), each caller's answer its own."""
        def build() -> TableClient:
            # A TableClient to its users: the writes it batches keep the SDK's answers.
            return cast("TableClient", GroupCommitTable(self.table(suffix)))

        return self.cached(f"shared:{suffix}", build)

    def table(self, suffix: str) -> TableClient:
        """A table named `<prefix><suffix>`, created on first use in this process."""
        name = f"{self.settings.table_prefix}{suffix}"

        def build() -> TableClient:
            service = self.table_service()
            from azure.core.exceptions import ResourceExistsError  # SDK on first use (cold start)

            with contextlib.suppress(ResourceExistsError):
                service.create_table(name)
            return service.get_table_client(name)

        return self.cached(f"table:{name}", build)

    def storage_service(self, kind: str, connection: str = "AzureWebJobsStorage") -> Any:
        """A BlobServiceClient (`kind="blob"`) or QueueServiceClient (`"queue"`) for a
        Functions-style connection setting: a connection string in `<connection>`, or
        identity-based `<connection>__<kind>ServiceUri` / `<connection>__accountName`."""
        if kind not in ("blob", "queue"):
            raise ValueError(f"unknown storage service {kind!r}")

        def build() -> Any:
            client: Any
            if kind == "blob":
                from azure.storage.blob import BlobServiceClient  # SDK on first use (cold start)

                client = BlobServiceClient
            else:
                from azure.storage.queue import QueueServiceClient  # SDK on first use (cold start)

                client = QueueServiceClient
            env = os.environ
            if connection == "AzureWebJobsStorage" and self.settings.storage_connection_string:
                conn: str | None = self.settings.storage_connection_string
            else:
                conn = env.get(connection, "").strip() or None
                if conn == DEVELOPMENT_STORAGE:
                    conn = azurite_connection_string()
            if conn:
                return client.from_connection_string(conn, **self.storage_client_kwargs())
            return client(account_url=storage_account_url(connection, kind, env),
                          credential=self.credential, **self.storage_client_kwargs())

        return self.cached(f"storage:{kind}:{connection}", build)

    def servicebus_namespace(self, namespace: str) -> str:
        """The fully qualified namespace: `<name>.<PITCREW_SERVICEBUS_SUFFIX>`. A short name is
        completed; anything else (another suffix, an IP address, a host of the caller's choosing)
        is refused, so pitcrew's token is only ever presented to Service Bus itself."""
        return servicebus_fqdn(namespace, self.settings.servicebus_suffix)

    def servicebus(self, namespace: str, connection: str | None = None) -> Any:
        """A ServiceBusClient for a namespace under the cloud's Service Bus suffix: managed
        identity, or a connection string from the app setting `connection` (named by the
        policy, never by a caller; local runs)."""
        fqdn = self.servicebus_namespace(namespace)
        if connection is not None and not _SETTING_NAME.match(connection):
            raise ConfigurationError(f"{connection[:100]!r} is not an app setting name")

        def build() -> Any:
            from azure.servicebus import ServiceBusClient  # SDK on first use (cold start)

            if connection:
                return ServiceBusClient.from_connection_string(
                    connection_setting(connection, os.environ))
            return ServiceBusClient(fqdn, credential=self.credential)

        return self.cached(f"servicebus:{fqdn}:{connection or ''}", build)

    # ------------------------------------------------------------------ Key Vault, ARM, Event Grid
    # In Azure these reach the real services with the managed identity. With
    # PITCREW_LOCAL_AZURE_URL set (`pitcrew dev`, tests) they reach the local Azure endpoint:
    # same SDK clients, its CA (PITCREW_LOCAL_AZURE_CA), its vault URLs
    # (PITCREW_LOCAL_AZURE_VAULTS, JSON name -> URL) and pitcrew.endpoint_credential.

    def local_azure_url(self) -> str | None:
        """The local Azure endpoint's URL, for development and tests only. It must be https on
        loopback: set by mistake in Azure, a non-loopback URL would send the app's requests
        (and the secret values it writes) to another host, so it is refused outright."""
        raw = os.environ.get("PITCREW_LOCAL_AZURE_URL", "").strip().rstrip("/")
        if not raw:
            return None
        parts = urlsplit(raw)
        if parts.scheme != "https" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigurationError(
                "PITCREW_LOCAL_AZURE_URL must be an https URL on loopback (the local Azure "
                "endpoint of `pitcrew dev`); never set it in Azure"
            )
        return raw

    def azure_credential(self) -> Any:
        """The credential for Key Vault, ARM and Event Grid."""
        if self.local_azure_url():
            def build() -> Any:
                # Built on azure-core: loaded on first use (cold start).
                from pitcrew.endpoint_credential import APP_PRINCIPAL, EndpointCredential

                return EndpointCredential(APP_PRINCIPAL)

            return self.cached("local_azure_credential", build)
        return self.credential

    def azure_client_kwargs(self) -> dict[str, Any]:
        ca = os.environ.get("PITCREW_LOCAL_AZURE_CA", "").strip()
        return {"connection_verify": ca} if self.local_azure_url() and ca else {}

    def vault_url(self, vault: str) -> str:
        if self.local_azure_url():
            vaults = json.loads(os.environ.get("PITCREW_LOCAL_AZURE_VAULTS", "") or "{}")
            url = vaults.get(vault) or vaults.get(vault.lower())
            if not url:
                raise ConfigurationError(
                    f"vault {vault!r} is not served by the local Azure endpoint "
                    f"(PITCREW_LOCAL_AZURE_VAULTS names: {', '.join(sorted(vaults)) or 'none'})"
                )
            return str(url)
        return f"https://{vault}.vault.azure.net"

    def secret_client(self, vault: str) -> Any:
        """A SecretClient for one vault, cached."""
        return self.vault_client(vault, "azure.keyvault.secrets", "SecretClient")

    def vault_client(self, vault: str, module: str, class_name: str) -> Any:
        """A Key Vault data-plane client for one vault (`module`.`class_name`: SecretClient,
        KeyClient, CertificateClient), cached; the SDK is imported on first use (cold start)."""

        def build() -> Any:
            client_class = getattr(importlib.import_module(module), class_name)
            kwargs = self.azure_client_kwargs()
            if self.local_azure_url():
                # 127.0.0.1 cannot match the challenge's *.vault.azure.net resource.
                kwargs["verify_challenge_resource"] = False
            return client_class(self.vault_url(vault), self.azure_credential(), **kwargs)

        return self.cached(f"{class_name}:{vault.lower()}", build)

    def arm_client(self, module: str, class_name: str, subscription_id: str) -> Any:
        """An azure-mgmt-* client (e.g. "azure.mgmt.cosmosdb", "CosmosDBManagementClient")."""

        def build() -> Any:
            client_class = getattr(importlib.import_module(module), class_name)
            kwargs = self.azure_client_kwargs()
            if self.local_azure_url():
                kwargs["base_url"] = self.local_azure_url()
            return client_class(self.azure_credential(), subscription_id, **kwargs)

        return self.cached(f"arm:{module}:{subscription_id}", build)

    def eventgrid_publisher(self) -> Any | None:
        """An EventGridPublisherClient for PITCREW_EVENTGRID_TOPIC_ENDPOINT, or None when unset.
        Managed identity by default; an access key when PITCREW_EVENTGRID_TOPIC_KEY is set."""
        endpoint = os.environ.get("PITCREW_EVENTGRID_TOPIC_ENDPOINT", "").strip()
        if not endpoint:
            return None

        def build() -> Any:
            from azure.eventgrid import EventGridPublisherClient  # SDK on first use (cold start)

            key = os.environ.get("PITCREW_EVENTGRID_TOPIC_KEY", "").strip()
            if key:
                from azure.core.credentials import AzureKeyCredential  # lazy (cold start)

                credential: Any = AzureKeyCredential(key)
            else:
                credential = self.azure_credential()
            return EventGridPublisherClient(endpoint, credential, **self.azure_client_kwargs())

        return self.cached(f"eventgrid:{endpoint}", build)

    def policy(self) -> Policy:
        """The policy, reloaded when the file changes; PolicyInvalid when it does not validate."""

        path = self.settings.policy_path
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = -1.0
        with self._lock:
            if self._policy is None or self._policy[0] != mtime:
                self._policy = (mtime, load_policy(path))
            return self._policy[1]


def connection_setting(name: str, env: Mapping[str, str]) -> str:
    """The connection string in app setting `name`; ConfigurationError naming the setting (never
    a value) when it is unset."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"app setting {name} is not set")
    return value


def storage_account_url(connection: str, kind: str, env: Mapping[str, str]) -> str:
    """The identity-based endpoint of a Functions-style storage connection without a connection
    string: `<connection>__<kind>ServiceUri`, else the account `<connection>__accountName`'s.
    ConfigurationError naming the settings when neither is set. (`pitcrew policy validate
    --settings` asks the same of the connections a policy names.)"""
    uri = env.get(f"{connection}__{kind}ServiceUri", "").strip()
    account = env.get(f"{connection}__accountName", "").strip()
    if not uri and account:
        uri = f"https://{account}.{kind}.core.windows.net"
    if not uri:
        raise ConfigurationError(
            f"storage connection {connection!r} is not configured: set {connection} "
            f"or {connection}__accountName"
        )
    return uri


def servicebus_fqdn(namespace: str, suffix: str = DEFAULT_SERVICEBUS_SUFFIX) -> str:
    """`sb-prod` or `sb-prod.<suffix>` -> `sb-prod.<suffix>`; ConfigurationError otherwise."""
    name = namespace.strip().lower()
    suffix = suffix.strip(".").lower()
    if name.endswith("." + suffix):
        name = name[: -len(suffix) - 1]
    if not _NAMESPACE_NAME.match(name):
        raise ConfigurationError(
            f"Service Bus namespace {namespace[:100]!r} is not a namespace name or a name under "
            f"{suffix} (PITCREW_SERVICEBUS_SUFFIX)"
        )
    return f"{name}.{suffix}"


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(Settings.from_env())
        return _runtime


def reset_runtime() -> None:
    global _runtime
    with _runtime_lock:
        _runtime = None
