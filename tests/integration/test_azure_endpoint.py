"""The local Azure endpoint, driven by the real Azure SDK clients pitcrew's adapters use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, quote_plus

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import SecretClient
from azure.mgmt.cosmosdb import CosmosDBManagementClient
from azure.mgmt.eventhub import EventHubManagementClient
from azure.mgmt.servicebus import ServiceBusManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.web import WebSiteManagementClient
from azure.storage.blob import BlobServiceClient

from pitcrew_dev.azure_endpoint import LocalAzure, LocalCredential, start_local_azure

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = "rg-pitcrew"
PROVIDERS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
COSMOS = f"{PROVIDERS}/Microsoft.DocumentDB/databaseAccounts/cosmos-demo"
STORAGE = f"{PROVIDERS}/Microsoft.Storage/storageAccounts/stdemo"
SB_NS = f"{PROVIDERS}/Microsoft.ServiceBus/namespaces/sb-demo"
SB_RULE = f"{SB_NS}/AuthorizationRules/RootManageSharedAccessKey"
SB_QUEUE_RULE = f"{SB_NS}/queues/orders/authorizationRules/send"
EH_RULE = f"{PROVIDERS}/Microsoft.EventHub/namespaces/eh-demo/authorizationRules/root"
SITE = f"{PROVIDERS}/Microsoft.Web/sites/app-demo"
ALL_RESOURCES = (COSMOS, STORAGE, SB_RULE, SB_QUEUE_RULE, EH_RULE, SITE)
T = TypeVar("T")


@pytest.fixture(scope="module")
def azure() -> Iterator[LocalAzure]:
    config = {"vaults": ["sample-kv"], "resources": [{"id": rid} for rid in ALL_RESOURCES]}
    with start_local_azure(config=config) as endpoint:
        yield endpoint


@pytest.fixture
def secrets(azure: LocalAzure, unique_name: str) -> SecretClient:
    # A vault per test keeps list assertions independent of other tests.
    vault = "kv-" + unique_name[:18]
    return SecretClient(azure.vault_url(vault), LocalCredential(), **azure.keyvault_client_kwargs())


def regenerated(azure: LocalAzure, resource_id: str, before: dict[str, int]) -> dict[str, int]:
    """Regenerations since `before`, so tests don't depend on each other's order."""
    now = azure.regenerations(resource_id)
    return {key: now[key] - before.get(key, 0) for key in now if now[key] != before.get(key, 0)}


def bearer(scope: str) -> dict[str, str]:
    """An Authorization header for a raw request: the endpoint, like Azure, refuses a token
    issued for another service than the one called."""
    return {"Authorization": f"Bearer {LocalCredential().get_token(scope).token}"}


VAULT_AUTH = bearer("https://vault.azure.net/.default")
ARM_AUTH = bearer("https://management.azure.com/.default")


def mgmt(cls: type[T], azure: LocalAzure) -> T:
    # The constructor pitcrew's adapters use, plus base_url and the CA: nothing else differs.
    return cls(LocalCredential("rotator"), SUB, **azure.mgmt_client_kwargs())  # type: ignore[call-arg]


# --- Key Vault -------------------------------------------------------------------------------


def test_set_get_versions_and_list(secrets: SecretClient) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    first = secrets.set_secret(
        "cosmos-key",
        "value-one",
        tags={"CredentialId": "primary"},
        content_type="text/plain",
        expires_on=expires,
    )
    second = secrets.set_secret("cosmos-key", "value-two", tags={"CredentialId": "secondary"})
    secrets.set_secret("other", "x")

    latest = secrets.get_secret("cosmos-key")
    assert latest.value == "value-two"
    assert latest.properties.version == second.properties.version
    assert latest.properties.vault_url == secrets.vault_url
    assert latest.properties.tags == {"CredentialId": "secondary"}

    old = secrets.get_secret("cosmos-key", first.properties.version)
    assert old.value == "value-one"
    assert old.properties.content_type == "text/plain"
    assert old.properties.expires_on == expires
    assert old.properties.enabled is True

    names = sorted(p.name for p in secrets.list_properties_of_secrets())
    assert names == ["cosmos-key", "other"]
    for _ in range(3):
        secrets.set_secret("cosmos-key", "more")
    # A page size of 2 makes the SDK follow nextLink twice.
    versions = list(secrets.list_properties_of_secret_versions("cosmos-key", max_page_size=2))
    assert len(versions) == 5
    assert {v.version for v in versions} >= {first.properties.version, second.properties.version}

    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("missing")
    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("cosmos-key", "0" * 32)


def test_update_properties(secrets: SecretClient) -> None:
    first = secrets.set_secret("db-password", "p1")
    secrets.set_secret("db-password", "p2")
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)

    updated = secrets.update_secret_properties(
        "db-password",
        first.properties.version,
        enabled=False,
        tags={"state": "retired"},
        expires_on=expires,
        content_type="application/x-password",
    )
    assert updated.enabled is False
    assert updated.tags == {"state": "retired"}
    assert updated.expires_on == expires
    assert updated.content_type == "application/x-password"
    with pytest.raises(HttpResponseError) as disabled:
        secrets.get_secret("db-password", first.properties.version)
    assert disabled.value.status_code == 403
    assert secrets.get_secret("db-password").value == "p2"  # latest untouched

    # No version: the latest version is updated.
    latest = secrets.update_secret_properties("db-password", tags={"CredentialId": "key2"})
    assert latest.version != first.properties.version
    assert secrets.get_secret("db-password").properties.tags == {"CredentialId": "key2"}


def test_a_value_over_25_kb_or_a_long_content_type_is_refused_as_key_vault_does(
        secrets: SecretClient) -> None:
    # Key Vault's limits: a value of at most 25 KB counted in bytes (UTF-8), a content type of
    # at most 255 characters; both answered 400 BadParameter.
    for value, content_type in (("\u00e9" * 20_000, None), ("x" * (25 * 1024 + 1), None),
                                ("ok", "t" * 256)):
        with pytest.raises(HttpResponseError) as refused:
            secrets.set_secret("limits", value, content_type=content_type)
        assert refused.value.status_code == 400 and refused.value.error is not None
        assert refused.value.error.code == "BadParameter", refused.value.message
    stored = secrets.set_secret("limits", "x" * (25 * 1024), content_type="t" * 255)
    with pytest.raises(HttpResponseError) as refused:
        secrets.update_secret_properties("limits", stored.properties.version,
                                         content_type="t" * 256)
    assert refused.value.status_code == 400


def test_delete_recover_purge(secrets: SecretClient) -> None:
    secrets.set_secret("temp", "t")
    deleted = secrets.begin_delete_secret("temp").result()
    assert deleted.name == "temp"
    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("temp")
    with pytest.raises(HttpResponseError) as conflict:
        secrets.set_secret("temp", "again")
    assert conflict.value.status_code == 409
    secrets.begin_recover_deleted_secret("temp").result()
    assert secrets.get_secret("temp").value == "t"
    secrets.begin_delete_secret("temp").result()
    secrets.purge_deleted_secret("temp")
    secrets.set_secret("temp", "fresh")


def test_request_without_token_gets_the_bearer_challenge(azure: LocalAzure) -> None:
    url = azure.vault_url("sample-kv") + "/secrets?api-version=7.6"
    response = requests.get(url, verify=str(azure.ca_path), timeout=10)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer authorization="https://login.microsoftonline.com/')
    assert 'resource="https://vault.azure.net"' in challenge
    authorized = requests.get(url, headers=VAULT_AUTH, verify=str(azure.ca_path), timeout=10)
    assert authorized.status_code == 200


def test_vaults_are_isolated_and_state_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    with start_local_azure(state_path=state, config={"vaults": ["kv-a", "kv-b"]}) as first:
        kw = first.keyvault_client_kwargs()
        a = SecretClient(first.vault_url("kv-a"), LocalCredential(), **kw)
        b = SecretClient(first.vault_url("kv-b"), LocalCredential(), **kw)
        a.set_secret("shared-name", "in-a", tags={"k": "v"})
        with pytest.raises(ResourceNotFoundError):
            b.get_secret("shared-name")
        url_a = first.vault_url("kv-a")
    with start_local_azure(state_path=state) as second:
        assert second.vault_url("kv-a") == url_a  # same port again: app settings stay valid
        client = SecretClient(url_a, LocalCredential(), **second.keyvault_client_kwargs())
        restored = client.get_secret("shared-name")
        assert (restored.value, restored.properties.tags) == ("in-a", {"k": "v"})


# --- ARM -------------------------------------------------------------------------------------


def test_cosmos_regenerate_changes_only_the_requested_key(azure: LocalAzure) -> None:
    client = mgmt(CosmosDBManagementClient, azure)
    counts = azure.regenerations(COSMOS)
    before = client.database_accounts.list_keys(RG, "cosmos-demo")
    started = time.monotonic()
    client.database_accounts.begin_regenerate_key(
        RG, "cosmos-demo", {"keyKind": "secondary"}
    ).result()
    assert time.monotonic() - started < 5  # the poller must not wait its default 30 s
    after = client.database_accounts.list_keys(RG, "cosmos-demo")
    assert after.secondary_master_key != before.secondary_master_key
    assert after.primary_master_key == before.primary_master_key
    assert after.primary_readonly_master_key == before.primary_readonly_master_key
    assert len(base64.b64decode(after.secondary_master_key)) == 64
    assert regenerated(azure, COSMOS, counts) == {"secondaryMasterKey": 1}
    last = azure.operations()[-1]
    assert (last["principal"], last["action"], last["key"]) == (
        "rotator",
        "regenerateKey",
        "secondaryMasterKey",
    )


def test_storage_servicebus_eventhub_regenerate_exactly_one_key(azure: LocalAzure) -> None:
    counts = {rid: azure.regenerations(rid) for rid in ALL_RESOURCES}
    storage = mgmt(StorageManagementClient, azure)
    before = {
        k.key_name: k.value for k in storage.storage_accounts.list_keys(RG, "stdemo").keys_property
    }
    result = storage.storage_accounts.regenerate_key(RG, "stdemo", {"keyName": "key2"})
    after = {k.key_name: k.value for k in result.keys_property}
    assert after["key1"] == before["key1"] and after["key2"] != before["key2"]
    assert regenerated(azure, STORAGE, counts[STORAGE]) == {"key2": 1}

    sb = mgmt(ServiceBusManagementClient, azure)
    old = sb.namespaces.list_keys(RG, "sb-demo", "RootManageSharedAccessKey")
    new = sb.namespaces.regenerate_keys(
        RG, "sb-demo", "RootManageSharedAccessKey", {"keyType": "PrimaryKey"}
    )
    assert new.primary_key != old.primary_key and new.secondary_key == old.secondary_key
    assert len(base64.b64decode(new.primary_key)) == 32
    assert new.key_name == "RootManageSharedAccessKey"
    assert new.primary_key in new.primary_connection_string
    assert regenerated(azure, SB_RULE, counts[SB_RULE]) == {"primaryKey": 1}

    queue_old = sb.queues.list_keys(RG, "sb-demo", "orders", "send")
    queue_new = sb.queues.regenerate_keys(
        RG, "sb-demo", "orders", "send", {"keyType": "SecondaryKey"}
    )
    assert queue_new.secondary_key != queue_old.secondary_key
    assert queue_new.primary_connection_string.endswith(";EntityPath=orders")
    assert regenerated(azure, SB_QUEUE_RULE, counts[SB_QUEUE_RULE]) == {"secondaryKey": 1}

    eh = mgmt(EventHubManagementClient, azure)
    eh_old = eh.namespaces.list_keys(RG, "eh-demo", "root")
    eh_new = eh.namespaces.regenerate_keys(RG, "eh-demo", "root", {"keyType": "SecondaryKey"})
    assert eh_new.secondary_key != eh_old.secondary_key
    assert eh_new.primary_key == eh_old.primary_key
    assert regenerated(azure, EH_RULE, counts[EH_RULE]) == {"secondaryKey": 1}

    inspected = requests.get(
        azure.url + "/_local/regenerations", verify=str(azure.ca_path), timeout=10
    ).json()
    assert inspected[STORAGE] == azure.regenerations(STORAGE)


def test_site_restart_and_arm_errors(azure: LocalAzure) -> None:
    web = mgmt(WebSiteManagementClient, azure)
    restarts = azure.restarts(SITE)
    web.web_apps.restart(RG, "app-demo")
    assert azure.restarts(SITE) == restarts + 1
    counts = azure.regenerations(COSMOS)

    cosmos = mgmt(CosmosDBManagementClient, azure)
    with pytest.raises(ResourceNotFoundError):
        cosmos.database_accounts.list_keys(RG, "not-seeded")
    with pytest.raises(HttpResponseError) as bad:
        cosmos.database_accounts.begin_regenerate_key(RG, "cosmos-demo", {"keyKind": "tertiary"})
    assert bad.value.status_code == 400
    assert azure.regenerations(COSMOS) == counts

    unauthenticated = requests.post(
        f"{azure.url}{COSMOS}/listKeys?api-version=2024-11-15",
        verify=str(azure.ca_path),
        timeout=10,
    )
    assert unauthenticated.status_code == 401
    assert "Bearer" in unauthenticated.headers["WWW-Authenticate"]


# --- data-plane signatures --------------------------------------------------------------------


def cosmos_headers(key: str, verb: str, resource_type: str, link: str) -> dict[str, str]:
    # Written from the Cosmos DB REST docs, independently of the endpoint's implementation.
    date = formatdate(usegmt=True)
    text = f"{verb.lower()}\n{resource_type.lower()}\n{link}\n{date.lower()}\n\n"
    digest = hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode()
    return {
        "authorization": quote(f"type=master&ver=1.0&sig={signature}", safe=""),
        "x-ms-date": date,
        "x-ms-version": "2018-12-31",
    }


def test_cosmos_master_key_signature(azure: LocalAzure) -> None:
    client = mgmt(CosmosDBManagementClient, azure)
    old = client.database_accounts.list_keys(RG, "cosmos-demo").primary_master_key
    client.database_accounts.begin_regenerate_key(
        RG, "cosmos-demo", {"keyKind": "primary"}
    ).result()
    new = client.database_accounts.list_keys(RG, "cosmos-demo").primary_master_key
    url = f"{azure.url}/cosmos/cosmos-demo/dbs"
    verify = str(azure.ca_path)

    ok = requests.get(url, headers=cosmos_headers(new, "GET", "dbs", ""), verify=verify, timeout=10)
    assert ok.status_code == 200 and ok.json()["matchedKey"] == "primaryMasterKey"
    stale = requests.get(
        url, headers=cosmos_headers(old, "GET", "dbs", ""), verify=verify, timeout=10
    )
    assert stale.status_code == 401
    wrong = base64.b64encode(b"x" * 64).decode()
    assert (
        requests.get(
            url, headers=cosmos_headers(wrong, "GET", "dbs", ""), verify=verify, timeout=10
        ).status_code
        == 401
    )
    account = requests.get(
        f"{azure.url}/cosmos/cosmos-demo/",
        headers=cosmos_headers(new, "GET", "", ""),
        verify=verify,
        timeout=10,
    )
    assert account.status_code == 200


def test_storage_shared_key_with_real_blob_client(azure: LocalAzure) -> None:
    storage = mgmt(StorageManagementClient, azure)
    old = {
        k.key_name: k.value for k in storage.storage_accounts.list_keys(RG, "stdemo").keys_property
    }
    storage.storage_accounts.regenerate_key(RG, "stdemo", {"keyName": "key1"})
    new = {
        k.key_name: k.value for k in storage.storage_accounts.list_keys(RG, "stdemo").keys_property
    }
    account_url = f"{azure.url}/storage/stdemo/blob"

    def blob_client(key: str) -> BlobServiceClient:
        return BlobServiceClient(
            account_url,
            credential={"account_name": "stdemo", "account_key": key},
            connection_verify=str(azure.ca_path),
            retry_total=0,
        )

    blob_client(new["key1"]).get_service_properties()
    blob_client(new["key2"]).get_service_properties()  # the other key stays valid
    assert list(blob_client(new["key1"]).list_containers()) == []
    with pytest.raises(ClientAuthenticationError):
        blob_client(old["key1"]).get_service_properties()


def sas_token(resource: str, rule: str, key: str) -> str:
    # The Service Bus docs' Python sample: the key's UTF-8 bytes sign "<encoded sr>\n<expiry>".
    encoded = quote_plus(resource)
    expiry = str(int(time.time()) + 600)
    digest = hmac.new(key.encode(), f"{encoded}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = quote(base64.b64encode(digest).decode(), safe="")
    return f"SharedAccessSignature sr={encoded}&sig={signature}&se={expiry}&skn={rule}"


def test_servicebus_sas_signature(azure: LocalAzure) -> None:
    sb = mgmt(ServiceBusManagementClient, azure)
    old = sb.namespaces.list_keys(RG, "sb-demo", "RootManageSharedAccessKey")
    new = sb.namespaces.regenerate_keys(
        RG, "sb-demo", "RootManageSharedAccessKey", {"keyType": "SecondaryKey"}
    )
    resource = f"{azure.url}/servicebus/sb-demo"
    verify = str(azure.ca_path)

    def probe(rule: str, key: str, path: str = "") -> requests.Response:
        token = sas_token(resource, rule, key)
        return requests.get(
            resource + path, headers={"Authorization": token}, verify=verify, timeout=10
        )

    accepted = probe("RootManageSharedAccessKey", new.secondary_key, "/orders")
    assert accepted.status_code == 200 and accepted.json()["matchedKey"] == "secondaryKey"
    assert probe("RootManageSharedAccessKey", new.primary_key).status_code == 200
    assert probe("RootManageSharedAccessKey", old.secondary_key).status_code == 401
    assert probe("NoSuchRule", new.primary_key).status_code == 401

    queue_keys = sb.queues.list_keys(RG, "sb-demo", "orders", "send")
    token = sas_token(resource + "/orders", "send", queue_keys.primary_key)
    ok = requests.get(
        resource + "/orders", headers={"Authorization": token}, verify=verify, timeout=10
    )
    assert ok.status_code == 200
    # An entity rule covers its own entity only, and sr must cover the URL called.
    other = requests.get(
        resource + "/invoices", headers={"Authorization": token}, verify=verify, timeout=10
    )
    assert other.status_code == 401


def test_eventhubs_sas_signature(azure: LocalAzure) -> None:
    eh = mgmt(EventHubManagementClient, azure)
    keys = eh.namespaces.list_keys(RG, "eh-demo", "root")
    resource = f"{azure.url}/eventhubs/eh-demo"
    for key, status in ((keys.primary_key, 200), (base64.b64encode(b"k" * 32).decode(), 401)):
        response = requests.get(
            resource + "/telemetry",
            headers={"Authorization": sas_token(resource, "root", key)},
            verify=str(azure.ca_path),
            timeout=10,
        )
        assert response.status_code == status


def test_auto_create_and_resource_document() -> None:
    with start_local_azure(config={"auto_create": True}) as endpoint:
        client = mgmt(StorageManagementClient, endpoint)
        keys = client.storage_accounts.list_keys(RG, "freshacct").keys_property
        assert [k.key_name for k in keys] == ["key1", "key2"]
        document = requests.get(
            f"{endpoint.url}{PROVIDERS}/Microsoft.Storage/storageAccounts/freshacct"
            "?api-version=2024-01-01",
            headers=ARM_AUTH,
            verify=str(endpoint.ca_path),
            timeout=10,
        ).json()
        assert document["name"] == "freshacct"
        assert document["properties"]["primaryEndpoints"]["blob"].endswith(
            "/storage/freshacct/blob/"
        )


# --- secret hygiene and process mode ----------------------------------------------------------


def test_no_secret_value_in_logs(
    azure: LocalAzure,
    secrets: SecretClient,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    value = "s3cr3t-" + base64.b64encode(b"never-log-me").decode()
    secrets.set_secret("hygiene", value)
    assert secrets.get_secret("hygiene").value == value
    with pytest.raises(HttpResponseError) as too_many_tags:
        secrets.set_secret("hygiene", value, tags={f"t{i}": "v" for i in range(16)})
    malformed = requests.put(  # a malformed body: the error must not echo the value
        secrets.vault_url + "/secrets/hygiene?api-version=7.6",
        data=json.dumps({"value": value, "attributes": {"enabled": "not-a-bool-" + value}}),
        headers={**VAULT_AUTH, "Content-Type": "application/json"},
        verify=str(azure.ca_path),
        timeout=10,
    )
    assert malformed.status_code == 400
    sb = mgmt(ServiceBusManagementClient, azure)
    keys = sb.namespaces.regenerate_keys(
        RG, "sb-demo", "RootManageSharedAccessKey", {"keyType": "PrimaryKey"}
    )
    inspection = requests.get(
        azure.url + "/_local/resources", verify=str(azure.ca_path), timeout=10
    )

    captured = capsys.readouterr()
    haystack = "\n".join(
        [
            caplog.text,
            captured.out,
            captured.err,
            str(too_many_tags.value),
            malformed.text,
            inspection.text,
        ]
    )
    # The endpoint did log these requests (so the scan below means something).
    assert any(r.name == "pitcrew_dev.azure_endpoint" for r in caplog.records)
    for needle in (value, keys.primary_key, keys.secondary_key):
        assert needle not in haystack


def test_ca_bundle_environment_is_enough_for_sdk_clients(
    azure: LocalAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A child process gets azure.environment(): azure-core's requests transport trusts
    # REQUESTS_CA_BUNDLE, so clients need no connection_verify there.
    for name, value in azure.environment().items():
        monkeypatch.setenv(name, value)
    client = SecretClient(
        azure.vault_url("sample-kv"), LocalCredential(), verify_challenge_resource=False
    )
    client.set_secret("env-only", "ok")
    cosmos = CosmosDBManagementClient(LocalCredential(), SUB, base_url=azure.url)
    assert cosmos.database_accounts.list_keys(RG, "cosmos-demo").primary_master_key


def test_local_credential_speaks_both_protocols() -> None:
    credential = LocalCredential("alice")
    token = credential.get_token("https://vault.azure.net/.default")
    info = credential.get_token_info("https://vault.azure.net/.default")
    assert token.token and info.token and info.expires_on > time.time()
    with pytest.raises(ValueError):
        credential.get_token()


def test_main_runs_as_a_process(tmp_path: Path) -> None:
    config = tmp_path / "seed.json"
    config.write_text(json.dumps({"vaults": ["proc-kv"], "resources": [{"id": COSMOS}]}))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pitcrew_dev.azure_endpoint",
            "--config",
            str(config),
            "--cert-dir",
            str(tmp_path / "tls"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert set(info["vaults"]) == {"proc-kv"}
        health = requests.get(info["url"] + "/_local/health", verify=info["ca_path"], timeout=10)
        assert health.json()["status"] == "ok"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
