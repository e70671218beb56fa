"""A token credential for the local Azure endpoint, for tests and tools: no Entra ID, no network.

The token format is the product's (`pitcrew.endpoint_credential`, which the app uses when
`PITCREW_LOCAL_AZURE_URL` points it here): `local.<base64url JSON>` naming the principal, scope
and tenant. `LocalCredential` is that credential with a development default principal;
`principal_from_token` is how the endpoint reads who asked, and `ServiceAudience.refusal` how
every service of the endpoint refuses a token issued for another service, as Azure does (an
adapter asking for the wrong audience must fail here, not first in Azure).
"""

from __future__ import annotations

from dataclasses import dataclass

from pitcrew.endpoint_credential import (
    LOCAL_TENANT_ID,
    TOKEN_LIFETIME_SECONDS,
    TOKEN_PREFIX,
    EndpointCredential,
    audience_of,
    principal_from_token,
)


class LocalCredential(EndpointCredential):
    """Issues dummy bearer tokens the local Azure endpoint accepts (and real Azure rejects).

    `principal` names the identity in the endpoint's operations log, e.g. "pitcrew-app" for the
    function app's managed identity or an operator's name in a test.
    """

    def __init__(self, principal: str = "pitcrew-local", tenant_id: str = LOCAL_TENANT_ID) -> None:
        super().__init__(principal, tenant_id)


@dataclass(frozen=True)
class ServiceAudience:
    """The token audiences one Azure service accepts, and the error it answers (401) for any
    other. `message` names the token's audience as `{found}`."""

    accepted: tuple[str, ...]
    code: str
    message: str

    def refusal(self, token: str) -> str | None:
        """None when `token` was issued for this service; else the message of its 401.

        Audiences compare case-insensitively and without trailing slashes. A token whose
        audience cannot be read (not an endpoint token) is refused: Azure would not accept it.
        """
        found = audience_of(token)
        accepted = {audience.rstrip("/").lower() for audience in self.accepted}
        if found is not None and found.lower() in accepted:
            return None
        return self.message.format(found=found if found is not None else "unknown")


_ARM_AUDIENCES = ("https://management.core.windows.net/", "https://management.azure.com/")

# Everything under /subscriptions (arm.py, quota.py, recovery.py, the metrics API).
ARM = ServiceAudience(
    _ARM_AUDIENCES,
    "InvalidAuthenticationTokenAudience",
    "The access token has been obtained for wrong audience or resource '{found}'. It should "
    "exactly match with one of the allowed audiences "
    + ",".join(f"'{audience}'" for audience in _ARM_AUDIENCES) + ".",
)
KEY_VAULT = ServiceAudience(
    ("https://vault.azure.net",),
    "Unauthorized",
    "AKV10022: Invalid audience. Expected https://vault.azure.net, found: {found}.",
)
EVENT_GRID = ServiceAudience(
    ("https://eventgrid.azure.net",),
    "Unauthorized",
    "The bearer token's audience '{found}' is not valid for Event Grid; expected "
    "https://eventgrid.azure.net.",
)
LOG_ANALYTICS = ServiceAudience(
    ("https://api.loganalytics.io",),
    "InvalidTokenError",
    "The provided authentication is not valid for this resource (token audience '{found}', "
    "expected https://api.loganalytics.io).",
)
# ACR's token exchange takes an Entra token for the registry service or, unless the registry's
# authentication-as-ARM policy is disabled, for ARM (what azure-containerregistry's `audience`
# selects).
CONTAINER_REGISTRY = ServiceAudience(
    ("https://containerregistry.azure.net", *_ARM_AUDIENCES),
    "UNAUTHORIZED",
    "the access token's audience '{found}' is not accepted by the registry: expected "
    "https://containerregistry.azure.net or "
    + " or ".join(_ARM_AUDIENCES) + ".",
)


__all__ = [
    "ARM",
    "CONTAINER_REGISTRY",
    "EVENT_GRID",
    "KEY_VAULT",
    "LOCAL_TENANT_ID",
    "LOG_ANALYTICS",
    "TOKEN_LIFETIME_SECONDS",
    "TOKEN_PREFIX",
    "LocalCredential",
    "ServiceAudience",
    "audience_of",
    "principal_from_token",
]
