"""A token credential for the local Azure endpoint, for tests and tools: no Entra ID, no network.

The token format is the product's (`pitcrew.endpoint_credential`, which the app uses when
`PITCREW_LOCAL_AZURE_URL` points it here): `local.<base64url JSON>` naming the principal, scope
and tenant. `LocalCredential` is that credential with a development default principal;
`principal_from_token` is how the endpoint reads who asked.
"""

from __future__ import annotations

from pitcrew.endpoint_credential import (
    LOCAL_TENANT_ID,
    TOKEN_LIFETIME_SECONDS,
    TOKEN_PREFIX,
    EndpointCredential,
    principal_from_token,
)


class LocalCredential(EndpointCredential):
    """Issues dummy bearer tokens the local Azure endpoint accepts (and real Azure rejects).

    `principal` names the identity in the endpoint's operations log, e.g. "pitcrew-app" for the
    function app's managed identity or an operator's name in a test.
    """

    def __init__(self, principal: str = "pitcrew-local", tenant_id: str = LOCAL_TENANT_ID) -> None:
        super().__init__(principal, tenant_id)


__all__ = [
    "LOCAL_TENANT_ID",
    "TOKEN_LIFETIME_SECONDS",
    "TOKEN_PREFIX",
    "LocalCredential",
    "principal_from_token",
]
