"""Consumer refresh after promotion: each site that reads the secret as a Key Vault reference is
asked to re-read its references (App Service does not reliably do it on a restart alone), then
restarted only where the policy says `restart: true`. Each effect happens once per run: the run
records what was done, and a resumed step skips it."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Protocol


class ConsumerSites(Protocol):
    """The sites port: `SiteRestarts` in pitcrew/azure/arm.py implements it."""

    def restart(self, site_id: str) -> None: ...

    def refresh_references(self, site_id: str) -> None: ...


class ConsumersUnconfigured(RuntimeError):
    """The policy lists consumer sites but no ARM client is configured."""


def consumers_of(data: MutableMapping[str, Any]) -> list[tuple[str, bool]]:
    """(site, restart) pairs of a run; runs recorded before `consumers` existed list only
    `restart_sites`, which were restarted then, and are refreshed and restarted now."""
    if "consumers" in data:
        return [(str(site), bool(restart)) for site, restart in data["consumers"] or []]
    return [(str(site), True) for site in data.get("restart_sites") or []]


def refresh(sites: Any, data: MutableMapping[str, Any]) -> None:
    """Refresh every consumer's Key Vault references, then restart those that ask for it."""
    consumers = consumers_of(data)
    if not consumers:
        return
    if sites is None:
        raise ConsumersUnconfigured("the policy lists consumer sites but no ARM client is "
                                    "configured.")
    refreshed: list[str] = data.setdefault("refreshed", [])
    restarted: list[str] = data.setdefault("restarted", [])
    for site, restart in consumers:
        if site not in refreshed:
            sites.refresh_references(site)
            refreshed.append(site)
        if restart and site not in restarted:
            sites.restart(site)
            restarted.append(site)
