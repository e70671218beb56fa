"""Key tests that hold in Azure (issue 10, item 10): a Service Bus / Event Hubs key is proven
with the least right its rule has (Listen, else Send), never with a Manage-only read, and the
local Azure endpoint refuses an operation the rule has no right for, with Azure's 401 and words."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests

from pitcrew.azure.arm import (
    CosmosKeys,
    DataPlane,
    EventHubsKeys,
    ServiceBusKeys,
    StorageKeys,
    sas_test_right,
)
from pitcrew.rotation.ports import CredentialRejected
from pitcrew_dev.azure_endpoint import LocalAzure, LocalCredential
from tests.integration.rotation_support import (
    RG,
    SUB,
    VAULT,
    RotationWorld,
    deliver,
    event_body,
    new_key,
    outcome,
    resource_id,
)

PROVIDERS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"


def sb_rule(namespace: str, rule: str, queue: str | None = "orders") -> str:
    entity = f"/queues/{queue}" if queue else ""
    return (f"{PROVIDERS}/Microsoft.ServiceBus/namespaces/{namespace}{entity}"
            f"/authorizationRules/{rule}")


def eh_rule(namespace: str, rule: str, hub: str = "telemetry") -> str:
    return (f"{PROVIDERS}/Microsoft.EventHub/namespaces/{namespace}/eventhubs/{hub}"
            f"/authorizationRules/{rule}")


def sas(local: LocalAzure, audience: str, rule: str, key: str) -> str:
    from azure.core.credentials import AzureNamedKeyCredential

    return DataPlane(local.url)._sas_header(audience, AzureNamedKeyCredential(rule, key))


def client_for(local: LocalAzure) -> Callable[[str, str, str], object]:
    def build(module: str, cls: str, subscription: str) -> object:
        import importlib

        client_class = getattr(importlib.import_module(module), cls)
        return client_class(LocalCredential("pitcrew-app"), subscription,
                            **local.mgmt_client_kwargs())

    return build


def test_local_endpoint_refuses_what_the_rule_has_no_right_for(
    local_azure: LocalAzure, unique_name: str
) -> None:
    rid = sb_rule(unique_name, "sender")
    local_azure.add_resource(rid, rights=["Send"])
    key = local_azure.keys(rid)["primaryKey"]
    base = f"{local_azure.url}/servicebus/{unique_name}/orders"
    auth = {"Authorization": sas(local_azure, base, "sender", key)}
    verify = str(local_azure.ca_path)

    # The old key test (a management read) needs Manage: refused in Azure, now refused locally.
    read = requests.get(base, headers=auth, verify=verify, timeout=10)
    assert read.status_code == 401
    assert "Unauthorized access. 'Manage,EntityRead' claim(s) are required" in read.text
    peek = requests.post(base + "/messages/head?timeout=0", headers=auth, verify=verify,
                         timeout=10)
    assert peek.status_code == 401
    assert "'Listen' claim(s) are required to perform this operation" in peek.text
    # Send: authorized, then the empty batch is refused before anything is enqueued.
    send = requests.post(
        base + "/messages", data=b"[]", verify=verify, timeout=10,
        headers={**auth, "Content-Type": "application/vnd.microsoft.servicebus.json"},
    )
    assert send.status_code == 400 and send.headers["x-ms-local-right"] == "Send"

    listener = sb_rule(unique_name, "listener")
    local_azure.add_resource(listener, rights=["Listen"])
    listen_auth = {"Authorization": sas(local_azure, base, "listener",
                                        local_azure.keys(listener)["secondaryKey"])}
    ok = requests.post(base + "/messages/head?timeout=0", headers=listen_auth, verify=verify,
                       timeout=10)
    assert ok.status_code == 204 and ok.headers["x-ms-local-key"] == "orders:secondaryKey"

    # ARM shows the rule's rights, as Azure's GET of an authorization rule does.
    arm_token = LocalCredential().get_token("https://management.azure.com/.default").token
    document = requests.get(f"{local_azure.url}{rid}?api-version=2022-10-01-preview",
                            headers={"Authorization": f"Bearer {arm_token}"}, verify=verify,
                            timeout=10).json()
    assert document["properties"]["rights"] == ["Send"]


def test_rights_are_validated_as_arm_does(local_azure: LocalAzure, unique_name: str) -> None:
    with pytest.raises(ValueError, match="Manage must also have Listen and Send"):
        local_azure.add_resource(sb_rule(unique_name, "odd"), rights=["Manage"])
    with pytest.raises(ValueError, match="subset"):
        local_azure.add_resource(sb_rule(unique_name, "odd2"), rights=["Read"])


@pytest.mark.parametrize(("rights", "expected"), [
    (["Send"], "Send"), (["Listen"], "Listen"), (["Listen", "Send"], "Listen"),
    (["Listen", "Send", "Manage"], "Listen"),
])
def test_provider_tests_a_key_with_the_rules_least_right(
    local_azure: LocalAzure, unique_name: str, rights: list[str], expected: str
) -> None:
    data_plane = DataPlane(local_azure.url, str(local_azure.ca_path))
    for provider, rid, service in (
        (ServiceBusKeys(client_for(local_azure), data_plane), sb_rule(unique_name, "r"),
         "servicebus"),
        (EventHubsKeys(client_for(local_azure), data_plane), eh_rule(unique_name, "r"),
         "eventhubs"),
    ):
        local_azure.add_resource(rid, rights=rights)
        keys = local_azure.keys(rid)
        assert provider.rights(rid) == rights
        provider.test(rid, "primaryKey", keys["primaryKey"])
        namespace = unique_name
        entity = "orders" if service == "servicebus" else "telemetry"
        used = data_plane.test_sas(service, namespace, entity, "r", keys["secondaryKey"],
                                   rights=rights)
        assert used == expected
        with pytest.raises(CredentialRejected):
            provider.test(rid, "primaryKey", new_key(32))


def test_least_right_choice() -> None:
    assert sas_test_right("servicebus", None, None, ["Listen", "Send", "Manage"]) == "Manage"
    assert sas_test_right("servicebus", "t", "topics", ["Listen", "Send"]) == "Send"
    with pytest.raises(ValueError, match="namespace-level rule without Manage"):
        sas_test_right("servicebus", None, None, ["Send"])
    with pytest.raises(ValueError, match="subscription"):
        sas_test_right("servicebus", "t", "topics", ["Listen"])


@pytest.mark.parametrize(("strategy", "rights"), [
    ("servicebus-keys", ["Send"]), ("servicebus-keys", ["Listen"]),
    ("eventhubs-keys", ["Send"]), ("eventhubs-keys", ["Listen"]),
])
def test_send_or_listen_only_rules_rotate_end_to_end(
    world: RotationWorld, unique_name: str, strategy: str, rights: list[str]
) -> None:
    rid = (sb_rule(unique_name, "app") if strategy == "servicebus-keys"
           else eh_rule(unique_name, "app"))
    keys = {"primaryKey": new_key(32), "secondaryKey": new_key(32)}
    world.local.add_resource(rid, keys, rights=rights)
    secret = f"{unique_name}-key"
    written = world.client.set_secret(secret, keys["primaryKey"],
                                      expires_on=datetime.now(UTC) + timedelta(days=20))
    world.rule(secret, strategy, resource=rid)
    world.write_policy()
    result = deliver(event_body(VAULT, secret, str(written.properties.version)))
    assert outcome(result) == "handled"
    assert "succeeded" in result.body["events"][0]["detail"], result.body
    assert world.latest(secret).value == world.local.keys(rid)["secondaryKey"]
    assert world.local.regenerations(rid) == {"secondaryKey": 1}


def test_a_storage_account_without_shared_key_access_is_named_not_blamed_on_the_key(
    local_azure: LocalAzure, unique_name: str
) -> None:
    """Azure refuses every SharedKey request when allowSharedKeyAccess is false, whatever the
    key: the local endpoint does too, and the rotation's refusal names that cause (a good key
    is refused the same way, twice), not a bad key."""
    rid = resource_id("storage-keys", unique_name[:24].lower())
    local_azure.add_resource(rid, shared_key_access=False)
    provider = StorageKeys(client_for(local_azure),
                           DataPlane(local_azure.url, str(local_azure.ca_path)))
    good = local_azure.keys(rid)["key1"]
    for _ in range(2):
        with pytest.raises(CredentialRejected) as refused:
            provider.test(rid, "key1", good)
        message = str(refused.value)
        assert "KeyBasedAuthenticationNotPermitted" in message
        assert "shared key access is disabled" in message and good not in message
    allowed = resource_id("storage-keys", (unique_name[:22] + "ok").lower())
    local_azure.add_resource(allowed)
    provider.test(allowed, "key1", local_azure.keys(allowed)["key1"])
    with pytest.raises(CredentialRejected, match="AuthenticationFailed"):
        provider.test(allowed, "key1", local_azure.keys(rid)["key2"])


@pytest.mark.parametrize(("strategy", "refusal", "code", "says"), [
    ("cosmos-keys", {"local_auth": False}, "LocalAuthDisabled", "key (local) authentication"),
    ("cosmos-keys", {"network_denied": True}, "FirewallBlocked", "firewall"),
    ("storage-keys", {"network_denied": True}, "AuthorizationFailure", "network rules"),
    ("servicebus-keys", {"local_auth": False}, "LocalAuthDisabled", "key (local) authentication"),
    ("eventhubs-keys", {"local_auth": False}, "LocalAuthDisabled", "key (local) authentication"),
    ("servicebus-keys", {"network_denied": True}, "FirewallBlocked", "firewall"),
    ("eventhubs-keys", {"network_denied": True}, "FirewallBlocked", "firewall"),
], ids=["cosmos local auth off", "cosmos firewall", "storage firewall",
        "servicebus local auth off", "eventhubs local auth off", "servicebus firewall",
        "eventhubs firewall"])
def test_a_data_plane_refusal_that_is_not_about_the_key_is_named_not_blamed_on_it(
    local_azure: LocalAzure, unique_name: str, strategy: str, refusal: dict[str, bool],
    code: str, says: str,
) -> None:
    """disableLocalAuth and a firewall refuse every key-signed request, whatever the key, with
    Azure's status and words: the local endpoint does too, and the key test names the cause
    (a good key is refused the same way, twice) instead of a bad key."""
    data_plane = DataPlane(local_azure.url, str(local_azure.ca_path))
    name = unique_name[:24].lower()
    rid, slot, provider = {
        "cosmos-keys": (resource_id("cosmos-keys", name), "primaryMasterKey",
                        CosmosKeys(client_for(local_azure), data_plane)),
        "storage-keys": (resource_id("storage-keys", name), "key1",
                         StorageKeys(client_for(local_azure), data_plane)),
        "servicebus-keys": (sb_rule(name, "r"), "primaryKey",
                            ServiceBusKeys(client_for(local_azure), data_plane)),
        "eventhubs-keys": (eh_rule(name, "r"), "primaryKey",
                           EventHubsKeys(client_for(local_azure), data_plane)),
    }[strategy]
    local_azure.add_resource(rid, **refusal)
    good = local_azure.keys(rid)[slot]
    for _ in range(2):
        with pytest.raises(CredentialRejected) as refused:
            provider.test(rid, slot, good)
        message = str(refused.value)
        assert code in message and says in message and good not in message, message
    local_azure.add_resource(rid)  # the setting turned back: the same key passes
    provider.test(rid, slot, good)


@pytest.mark.parametrize(("refusal", "says"), [
    ({"lock": "ReadOnly"}, "ScopeLocked"),
    ({"rbac_denied": True}, "Microsoft.DocumentDB/databaseAccounts/listKeys/action"),
])
def test_an_arm_refusal_no_retry_fixes_stops_the_run_at_once_with_what_to_do(
    world: RotationWorld, local_azure: LocalAzure, unique_name: str,
    refusal: dict[str, object], says: str,
) -> None:
    """A ReadOnly lock (409 ScopeLocked, which also blocks listKeys) or no role assignment
    (403 AuthorizationFailed): the run fails on its first attempt, naming the cause and the
    action for a person, not after max_attempts with the raw error; no key is regenerated, and
    a second event changes nothing more."""
    from tests.integration.rotation_support import runs

    seeded = world.seed_dual("cosmos-keys", unique_name)
    local_azure.add_resource(seeded.resource, **refusal)  # type: ignore[arg-type]
    for _ in range(2):
        result = deliver(event_body(VAULT, seeded.secret, seeded.version))
        assert outcome(result) == "handled", result.body
    (run,) = [r for r in runs() if seeded.secret in r["run_id"]]
    assert run["status"] == "failed", run
    assert says in run["data"]["outcome"] and "retry the rotation" in run["data"]["outcome"]
    assert int(run["data"].get("attempts", 0)) <= 1
    assert local_azure.regenerations(seeded.resource) == {}
