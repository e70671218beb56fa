"""The rotation ports' Azure implementations, wired from the runtime (lazily: SDKs on use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pitcrew.rotation.ports import RotationPorts

if TYPE_CHECKING:
    from pitcrew.runtime import Runtime


def build_ports(runtime: Runtime) -> RotationPorts:
    from pitcrew.azure.arm import DataPlane, SiteRestarts, providers
    from pitcrew.azure.eventgrid import EventGridPublisher
    from pitcrew.azure.keyvault import KeyVaultSecretStore

    verify = runtime.azure_client_kwargs().get("connection_verify", True)
    data_plane = DataPlane(runtime.local_azure_url(), verify)
    publisher = runtime.eventgrid_publisher()
    return RotationPorts(
        secrets=KeyVaultSecretStore(runtime.secret_client),
        providers=providers(runtime.arm_client, data_plane),
        events=EventGridPublisher(publisher) if publisher is not None else None,
        sites=SiteRestarts(runtime.arm_client),
    )
