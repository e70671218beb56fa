"""The credential for a configured non-Azure endpoint (`PITCREW_LOCAL_AZURE_URL`).

When the app is pointed at an endpoint that serves the Azure APIs without Entra ID (the local
Azure endpoint of `pitcrew dev` and the tests), there is no token to get: `pitcrew.runtime` then
passes this credential where it passes `DefaultAzureCredential` in Azure. No network, never a
real token: it issues `local.<base64url JSON>` bearer tokens naming the principal, scope and
tenant, so the endpoint can record *who* asked for each change (as Azure's activity log would)
and refuse a token asked for another service's audience (as Azure would). Real Azure rejects
them.

It implements both azure-core credential protocols (`TokenCredential.get_token` and
`SupportsTokenInfo.get_token_info`), so every SDK client accepts it. It is part of the product,
not of the development tooling: the endpoint is configured by app settings, and the token format
below is the contract between the app and any endpoint it is pointed at (`pitcrew_dev` reads it).
"""

from __future__ import annotations

import base64
import json
import time
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

TOKEN_PREFIX = "local."  # noqa: S105 - a marker, not a credential
# Long enough that the SDK's refresh-before-expiry logic never kicks in during a dev session,
# short enough that nothing treats it as "never expires".
TOKEN_LIFETIME_SECONDS = 3600
LOCAL_TENANT_ID = "00000000-0000-0000-0000-000000000000"
APP_PRINCIPAL = "pitcrew-app"


class EndpointCredential:
    """Issues unsigned bearer tokens naming `principal`, for an endpoint that is not Entra ID.

    `principal` names the identity in the endpoint's operations log: "pitcrew-app" for the
    function app (its managed identity in Azure), an operator's name in a test.
    """

    def __init__(self, principal: str = APP_PRINCIPAL, tenant_id: str = LOCAL_TENANT_ID) -> None:
        self.principal = principal
        self.tenant_id = tenant_id

    def _token(self, scopes: tuple[str, ...], tenant_id: str | None) -> tuple[str, int]:
        if not scopes:
            # Same contract as azure-identity: a token without a scope is a caller bug.
            raise ValueError(f"{type(self).__name__} needs at least one scope")
        claims = {
            "oid": self.principal,
            "scp": " ".join(scopes),
            "tid": tenant_id or self.tenant_id,
        }
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return TOKEN_PREFIX + payload, int(time.time()) + TOKEN_LIFETIME_SECONDS

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        token, expires_on = self._token(scopes, tenant_id)
        return AccessToken(token, expires_on)

    def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        tenant_id = (options or {}).get("tenant_id")
        token, expires_on = self._token(scopes, tenant_id)
        return AccessTokenInfo(token, expires_on, token_type="Bearer")  # noqa: S106

    # SupportsTokenInfo is also a context manager; nothing to release here.
    def close(self) -> None:
        return None

    def __enter__(self) -> EndpointCredential:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _claims(token: str) -> dict[str, Any]:
    """The claims of an EndpointCredential token; empty for any other token."""
    if not token.startswith(TOKEN_PREFIX):
        return {}
    payload = token[len(TOKEN_PREFIX) :]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, json.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def principal_from_token(token: str) -> str:
    """The principal an EndpointCredential token names, or "unknown" for any other token."""
    principal = _claims(token).get("oid")
    return principal if isinstance(principal, str) and principal else "unknown"


def _resource(scope: str) -> str:
    # Entra ID issues a `<resource>/.default` scope for `<resource>`; the Azure CLI's ARM scope
    # carries a doubled slash ("https://management.core.windows.net//.default").
    if scope.lower().endswith("/.default"):
        scope = scope[: -len("/.default")]
    return scope.rstrip("/")


def audience_of(token: str) -> str | None:
    """The resource an EndpointCredential token was issued for (its scope without "/.default"
    and trailing slashes, e.g. "https://vault.azure.net"), as the `aud` claim of an Entra ID
    token names it. None for any other token, or one whose scopes name several resources
    (Entra ID issues a token for one resource only)."""
    scopes = _claims(token).get("scp")
    if not isinstance(scopes, str):
        return None
    resources = [_resource(scope) for scope in scopes.split()]
    if len({resource.lower() for resource in resources}) != 1:
        return None
    return resources[0] or None
