"""The local Azure endpoint refuses a bearer token issued for another service, as Azure does.

Each service is reached through the real SDK client pitcrew's adapter uses; the wrong audience
comes either from the client's own scope setting (`credential_scopes`, `audience`) or from a
credential that ignores the scope the client asks for. An adapter that asks for the wrong
audience must fail here as it would fail in Azure, not only after deployment.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from azure.containerregistry import ContainerRegistryClient
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient
from azure.keyvault.secrets import SecretClient
from azure.mgmt.cosmosdb import CosmosDBManagementClient
from azure.mgmt.quota import QuotaMgmtClient
from azure.monitor.query import LogsQueryClient, LogsQueryResult, MetricsQueryClient

from pitcrew.azure.loganalytics import backup_jobs_query
from pitcrew_dev.azure_endpoint import LocalAzure, LocalCredential, start_local_azure

SUB = "00000000-0000-0000-0000-0000000000ab"
RG = "rg-audience"
ACCOUNTS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/" \
    "databaseAccounts"
COSMOS = f"{ACCOUNTS}/cosmos-aud"  # ArmApp's keys; the quota module's metrics
RESTORABLE = f"{ACCOUNTS}/restorable-aud"  # recovery.py's account document and DocumentCount
QUOTA_SCOPE = f"subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus"
WORKSPACE = "22222222-3333-4444-5555-666666666666"
REGISTRY = "acraudience.azurecr.io"
VAULT = "kv-audience"

ARM_SCOPE = "https://management.azure.com/.default"
VAULT_SCOPE = "https://vault.azure.net/.default"


class FixedScopeCredential:
    """Hands out a token for `scope` whatever scope the client asks for: stands in for an
    adapter whose credential was set up for another service."""

    def __init__(self, scope: str) -> None:
        self._scope = scope
        self._inner = LocalCredential("wrong-audience")

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return self._inner.get_token(self._scope)

    def get_token_info(self, *scopes: str,
                       options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        return self._inner.get_token_info(self._scope)


@pytest.fixture(scope="module")
def azure() -> Iterator[LocalAzure]:
    config: dict[str, Any] = {
        "vaults": [VAULT],
        "resources": [{"id": COSMOS}],
        "quotas": [{"scope": QUOTA_SCOPE, "name": "cores", "limit": 100, "usage": 10}],
        "metrics": [{"resource": COSMOS, "metric": "NormalizedRUConsumption", "value": 40}],
        "recovery": {
            "cosmos": [{"id": RESTORABLE, "databases": {"shop": {"orders": 10}}}],
            "workspaces": {WORKSPACE: [{"BackupItemUniqueId": "vm-1", "JobStatus": "Completed",
                                        "JobStartDateTime": "-1h"}]},
            "registries": {REGISTRY: {"api": [{"tags": ["v1"]}]}},
        },
    }
    with start_local_azure(config=config) as endpoint:
        yield endpoint


def arm_refusal(error: HttpResponseError, found: str) -> None:
    assert error.status_code == 401
    assert error.error is not None and error.error.code == "InvalidAuthenticationTokenAudience"
    assert f"wrong audience or resource '{found}'" in str(error.error.message)
    assert "'https://management.core.windows.net/','https://management.azure.com/'" in str(
        error.error.message)


# --- ARM (arm.py, recovery.py, quota.py, metrics) ---------------------------------------------


def test_arm_refuses_a_key_vault_token_and_accepts_both_arm_audiences(azure: LocalAzure) -> None:
    wrong = CosmosDBManagementClient(LocalCredential("rotator"), SUB,
                                     credential_scopes=[VAULT_SCOPE], **azure.mgmt_client_kwargs())
    before = azure.regenerations(COSMOS)
    with pytest.raises(HttpResponseError) as refused:
        wrong.database_accounts.list_keys(RG, "cosmos-aud")
    arm_refusal(refused.value, "https://vault.azure.net")
    with pytest.raises(HttpResponseError) as refused:
        wrong.database_accounts.begin_regenerate_key(RG, "cosmos-aud", {"keyKind": "primary"})
    arm_refusal(refused.value, "https://vault.azure.net")
    assert azure.regenerations(COSMOS) == before
    # ARM takes the classic audience too, with the double slash the Azure CLI sends.
    for scope in (ARM_SCOPE, "https://management.core.windows.net//.default",
                  "HTTPS://Management.Azure.com//.default"):
        right = CosmosDBManagementClient(LocalCredential("rotator"), SUB,
                                         credential_scopes=[scope], **azure.mgmt_client_kwargs())
        assert right.database_accounts.list_keys(RG, "cosmos-aud").primary_master_key


def test_recovery_arm_routes_refuse_a_key_vault_token(azure: LocalAzure) -> None:
    wrong = CosmosDBManagementClient(LocalCredential(), SUB, credential_scopes=[VAULT_SCOPE],
                                     **azure.mgmt_client_kwargs())
    with pytest.raises(HttpResponseError) as refused:
        wrong.database_accounts.get(RG, "restorable-aud")
    arm_refusal(refused.value, "https://vault.azure.net")
    with pytest.raises(HttpResponseError) as refused:
        list(wrong.restorable_database_accounts.list_by_location("eastus"))
    arm_refusal(refused.value, "https://vault.azure.net")
    right = CosmosDBManagementClient(LocalCredential(), SUB, **azure.mgmt_client_kwargs())
    assert right.database_accounts.get(RG, "restorable-aud").backup_policy is not None


def test_quota_api_refuses_a_key_vault_token(azure: LocalAzure) -> None:
    wrong = QuotaMgmtClient(LocalCredential(), SUB, credential_scopes=[VAULT_SCOPE],
                            **azure.mgmt_client_kwargs())
    with pytest.raises(HttpResponseError) as refused:
        list(wrong.quota.list(scope=QUOTA_SCOPE))
    arm_refusal(refused.value, "https://vault.azure.net")
    right = QuotaMgmtClient(LocalCredential(), SUB, **azure.mgmt_client_kwargs())
    assert [q.name for q in right.quota.list(scope=QUOTA_SCOPE)] == ["cores"]


def test_metrics_refuse_a_token_for_the_endpoints_own_address(azure: LocalAzure) -> None:
    # MetricsQueryClient derives its audience from `endpoint` unless told: pointed at the local
    # endpoint without `audience`, it asks for a token for 127.0.0.1, which ARM would refuse.
    kwargs = {"endpoint": azure.url, "connection_verify": str(azure.ca_path)}
    for resource, metric in ((COSMOS, "NormalizedRUConsumption"), (RESTORABLE, "DocumentCount")):
        with pytest.raises(HttpResponseError) as refused:
            MetricsQueryClient(LocalCredential(), **kwargs).query_resource(
                resource.strip("/"), metric_names=[metric], timespan=timedelta(hours=1))
        arm_refusal(refused.value, azure.url)
        right = MetricsQueryClient(LocalCredential(), audience="https://management.azure.com",
                                   **kwargs)
        result = right.query_resource(resource.strip("/"), metric_names=[metric],
                                      timespan=timedelta(hours=1))
        assert [m.name for m in result.metrics] == [metric]


def test_arm_refuses_a_token_that_is_not_a_local_token(azure: LocalAzure) -> None:
    answer = requests.get(f"{azure.url}{COSMOS}?api-version=2024-11-15",
                          headers={"Authorization": "Bearer not-a-local-token"},
                          verify=str(azure.ca_path), timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"


# --- Key Vault ---------------------------------------------------------------------------------


def test_key_vault_refuses_a_management_token(azure: LocalAzure) -> None:
    client = SecretClient(azure.vault_url(VAULT), FixedScopeCredential(ARM_SCOPE),
                          **azure.keyvault_client_kwargs())
    with pytest.raises(ClientAuthenticationError) as refused:
        client.set_secret("never-stored", "value")
    assert refused.value.status_code == 401
    assert refused.value.error is not None and refused.value.error.code == "Unauthorized"
    assert refused.value.error.message == (
        "AKV10022: Invalid audience. Expected https://vault.azure.net, found: "
        "https://management.azure.com.")
    right = SecretClient(azure.vault_url(VAULT), LocalCredential(),
                         **azure.keyvault_client_kwargs())
    with pytest.raises(HttpResponseError) as missing:
        right.get_secret("never-stored")
    assert missing.value.status_code == 404


def test_key_vault_refuses_a_token_that_is_not_a_local_token(azure: LocalAzure) -> None:
    answer = requests.get(f"{azure.vault_url(VAULT)}/secrets?api-version=7.6",
                          headers={"Authorization": "Bearer anything"},
                          verify=str(azure.ca_path), timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["message"].startswith("AKV10022: Invalid audience.")
    assert 'resource="https://vault.azure.net"' in answer.headers["WWW-Authenticate"]


# --- Event Grid --------------------------------------------------------------------------------


def test_event_grid_refuses_a_management_token(
        azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    # EventGridPublisherClient ignores connection_verify: the CA comes from the environment.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azure.ca_bundle_path))
    endpoint = azure.topic_endpoint("audience")
    wrong = EventGridPublisherClient(endpoint, FixedScopeCredential(ARM_SCOPE))
    with pytest.raises(ClientAuthenticationError) as refused:
        wrong.send([CloudEvent(source="/pitcrew", type="pitcrew.Test", data=None)])
    assert refused.value.status_code == 401
    assert azure.published_events("audience") == []
    EventGridPublisherClient(endpoint, LocalCredential()).send(
        [CloudEvent(source="/pitcrew", type="pitcrew.Test", data=None)])
    assert [e["type"] for e in azure.published_events("audience")] == ["pitcrew.Test"]


# --- Log Analytics -----------------------------------------------------------------------------


def test_log_analytics_refuses_a_management_token(azure: LocalAzure) -> None:
    kwargs = {"endpoint": f"{azure.url}/loganalytics/v1", "connection_verify": str(azure.ca_path)}
    wrong = LogsQueryClient(LocalCredential(), audience="https://management.azure.com", **kwargs)
    with pytest.raises(HttpResponseError) as refused:
        wrong.query_workspace(WORKSPACE, backup_jobs_query(), timespan=timedelta(days=1))
    assert refused.value.status_code == 401
    assert refused.value.error is not None
    assert refused.value.error.code == "InvalidTokenError"
    right = LogsQueryClient(LocalCredential(), audience="https://api.loganalytics.io", **kwargs)
    result = right.query_workspace(WORKSPACE, backup_jobs_query(), timespan=timedelta(days=1))
    assert isinstance(result, LogsQueryResult)
    assert [row[0] for row in result.tables[0].rows] == ["vm-1"]


# --- Container Registry ------------------------------------------------------------------------


def test_registry_token_exchange_refuses_a_key_vault_token(azure: LocalAzure) -> None:
    # The SDK exchanges an Entra token for an ACR refresh token; ACR takes a token for itself
    # (the SDK's default audience) or for ARM, and refuses any other.
    endpoint = f"{azure.url}/acr/{REGISTRY}"
    verify = {"connection_verify": str(azure.ca_path)}
    wrong = ContainerRegistryClient(endpoint, LocalCredential(),
                                    audience="https://vault.azure.net", **verify)
    with pytest.raises(ClientAuthenticationError) as refused:
        list(wrong.list_manifest_properties("api"))
    assert refused.value.status_code == 401
    for audience in ("https://containerregistry.azure.net", "https://management.azure.com"):
        right = ContainerRegistryClient(endpoint, LocalCredential(), audience=audience, **verify)
        assert [m.tags for m in right.list_manifest_properties("api")] == [["v1"]]
