"""Consumer refresh (issue 10, item 8): after promotion each consumer site re-reads its Key Vault
references through ARM's refresh action, exactly once per rotation; only sites whose policy entry
says `restart: true` are restarted. Asserted on what the local Azure endpoint recorded."""

from __future__ import annotations

from collections.abc import Callable

import requests

from pitcrew.azure.arm import SiteRestarts
from pitcrew_dev.azure_endpoint import LocalAzure, LocalCredential
from tests.integration.rotation_support import (
    SUB,
    VAULT,
    RotationWorld,
    deliver,
    event_body,
    outcome,
)


def site_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rot-rg/providers/Microsoft.Web/sites/{name}"


def client_for(local: LocalAzure) -> Callable[[str, str, str], object]:
    def build(module: str, cls: str, subscription: str) -> object:
        import importlib

        client_class = getattr(importlib.import_module(module), cls)
        return client_class(LocalCredential("pitcrew-app"), subscription,
                            **local.mgmt_client_kwargs())

    return build


def test_refresh_adapter_calls_the_reference_refresh_action(local_azure: LocalAzure,
                                                            unique_name: str) -> None:
    site = site_id(f"{unique_name}-web")
    local_azure.add_resource(site)
    SiteRestarts(client_for(local_azure)).refresh_references(site)
    assert local_azure.reference_refreshes(site) == 1
    assert local_azure.restarts(site) == 0
    last = local_azure.operations()[-1]
    assert (last["action"], last["principal"], last["resource_id"].lower()) == (
        "refreshKeyVaultReferences", "pitcrew-app", site.lower())
    inspected = requests.get(local_azure.url + "/_local/resources",
                             verify=str(local_azure.ca_path), timeout=10).json()
    (entry,) = [r for r in inspected if r["id"].lower() == site.lower()]
    assert entry["referenceRefreshes"] == 1


def test_consumers_refreshed_once_restarted_only_on_request(
    world: RotationWorld, unique_name: str
) -> None:
    quiet, bounced, legacy = (site_id(f"{unique_name}-{n}") for n in ("api", "worker", "old"))
    for site in (quiet, bounced, legacy):
        world.local.add_resource(site)
    seeded = world.seed_dual(
        "cosmos-keys", unique_name,
        consumers=[{"site": quiet}, {"site": bounced, "restart": True}],
        restart_sites=[legacy],  # the older setting: refreshed and restarted
    )
    body = event_body(VAULT, seeded.secret, seeded.version)
    result = deliver(body)
    assert outcome(result) == "handled" and "succeeded" in result.body["events"][0]["detail"]

    assert [world.local.reference_refreshes(s) for s in (quiet, bounced, legacy)] == [1, 1, 1]
    assert [world.local.restarts(s) for s in (quiet, bounced, legacy)] == [0, 1, 1]
    # The refresh comes after the new version exists (consumers never re-read a stale value).
    ops = world.local.operations()
    refresh_at = min(o["at"] for o in ops if o["action"] == "refreshKeyVaultReferences"
                     and o["resource_id"].lower() == quiet.lower())
    regen_at = max(o["at"] for o in ops if o["action"] == "regenerateKey"
                   and o["resource_id"].lower() == seeded.resource.lower())
    assert refresh_at > regen_at

    # A redelivery, and another event about the old version: nothing more.
    assert outcome(deliver(body)) == "duplicate"
    assert outcome(deliver(event_body(VAULT, seeded.secret, seeded.version))) == "handled"
    assert [world.local.reference_refreshes(s) for s in (quiet, bounced, legacy)] == [1, 1, 1]
    assert [world.local.restarts(s) for s in (quiet, bounced, legacy)] == [0, 1, 1]
