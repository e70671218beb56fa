"""Container registry artifacts through the registry's data plane (azure-containerregistry):
list manifests with their tags, sizes and lock flags, resolve a tag, delete a manifest. Token
exchange (Entra token -> ACR refresh -> access token) is the SDK's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pitcrew.housekeeping.recovery_ports import Manifest

if TYPE_CHECKING:
    from pitcrew.runtime import Runtime

ClientFactory = Callable[[str], Any]  # login server -> ContainerRegistryClient


class AcrImageRegistry:
    def __init__(self, client: ClientFactory) -> None:
        self._client = client

    def manifests(self, login_server: str, repository: str) -> list[Manifest]:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        client = self._client(login_server)
        try:
            return [
                Manifest(
                    digest=m.digest, tags=tuple(m.tags or ()), size=int(m.size_in_bytes or 0),
                    updated=m.last_updated_on,
                    can_delete=m.can_delete is not False, can_write=m.can_write is not False,
                )
                for m in client.list_manifest_properties(repository)
            ]
        except ResourceNotFoundError:
            return []

    def resolve(self, login_server: str, repository: str, reference: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        try:
            props = self._client(login_server).get_manifest_properties(repository, reference)
        except ResourceNotFoundError:
            return None
        return str(props.digest)

    def delete(self, login_server: str, repository: str, digest: str) -> None:
        self._client(login_server).delete_manifest(repository, digest)


def registry_clients(runtime: Runtime) -> ClientFactory:
    """login server -> a cached ContainerRegistryClient (https://<login server>, or the local
    endpoint's /acr/<login server> when PITCREW_LOCAL_AZURE_URL is set)."""

    def client(login_server: str) -> Any:
        def build() -> Any:
            from azure.containerregistry import ContainerRegistryClient  # SDK (cold start)

            local = runtime.local_azure_url()
            endpoint = f"{local}/acr/{login_server}" if local else f"https://{login_server}"
            # The SDK's default audience (https://containerregistry.azure.net): the registry's
            # own, accepted whether or not the registry still takes ARM-audience tokens (Azure
            # Policy recommends it does not).
            return ContainerRegistryClient(endpoint, runtime.azure_credential(),
                                           **runtime.azure_client_kwargs())

        return runtime.cached(f"acr:{login_server.lower()}", build)

    return client
