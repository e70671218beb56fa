"""Who may call pitcrew. Operators: the principal App Service Authentication puts in
X-MS-CLIENT-PRINCIPAL, and the one place roles are checked. The alert webhook: Azure Monitor's
Secure Webhook token (Entra ID), checked against the PITCREW_ALERT_TOKEN_* settings.

The header is trusted only when App Service Authentication is on (WEBSITE_AUTH_ENABLED), because
only then does the platform strip client-sent copies of it. The local host (`pitcrew dev`)
emulates that: it strips the header unless started with --allow-dev-principal.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pitcrew.errors import Forbidden, InvalidInput, PolicyInvalid, RetryLater, Unauthorized
from pitcrew.events import load_json

log = logging.getLogger(__name__)

PRINCIPAL_HEADER = "x-ms-client-principal"
# Larger than App Service Authentication writes (a name is at most a few hundred characters):
# anything past these is refused, never written into an audit record's Actor.
MAX_PRINCIPAL_HEADER = 128 * 1024
MAX_CLAIM_CHARS = 1024
ROLE_CLAIM_TYPES = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
NAME_CLAIM_TYPES = (
    "name",
    "preferred_username",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
)


class Role(StrEnum):
    READER = "Reader"
    OPERATOR = "Operator"
    ROTATOR = "Rotator"


# Acting on something implies being allowed to look at it.
_GRANTS: dict[Role, frozenset[Role]] = {
    Role.READER: frozenset({Role.READER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.READER}),
    Role.ROTATOR: frozenset({Role.ROTATOR, Role.READER}),
}


@dataclass(frozen=True)
class Principal:
    name: str
    identity_provider: str
    roles: frozenset[str]

    @property
    def actor(self) -> str:
        """How audit records name this operator."""
        return f"user:{self.name}"

    def has(self, role: Role) -> bool:
        known = {r.value: r for r in Role}
        return any(role in _GRANTS[known[r]] for r in self.roles if r in known)


def auth_enabled() -> bool:
    return os.environ.get("WEBSITE_AUTH_ENABLED", "").strip().lower() == "true"


def principal_from_headers(headers: Mapping[str, str]) -> Principal | None:
    if not auth_enabled():
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    encoded = lowered.get(PRINCIPAL_HEADER, "").strip()
    if not encoded:
        return None
    if len(encoded) > MAX_PRINCIPAL_HEADER:
        raise Unauthorized("X-MS-CLIENT-PRINCIPAL is longer than any principal")
    try:
        # load_json bounds the nesting (a RecursionError otherwise) and the integers.
        document = load_json(base64.b64decode(encoded, validate=False))
    except (binascii.Error, ValueError, InvalidInput):
        raise Unauthorized("X-MS-CLIENT-PRINCIPAL is not base64-encoded JSON") from None
    if not isinstance(document, dict):
        raise Unauthorized("X-MS-CLIENT-PRINCIPAL is not a principal object")
    claims = document.get("claims") or []
    role_type = document.get("role_typ") or "roles"
    name_type = document.get("name_typ") or "name"
    roles: set[str] = set()
    name = ""
    for claim in claims if isinstance(claims, list) else []:
        if not isinstance(claim, dict):
            continue
        typ, val = claim.get("typ"), claim.get("val")
        if not isinstance(typ, str) or not isinstance(val, str) or len(val) > MAX_CLAIM_CHARS:
            continue  # not a claim App Service Authentication writes
        if typ == role_type or typ in ROLE_CLAIM_TYPES:
            roles.add(val)
        elif not name and (typ == name_type or typ in NAME_CLAIM_TYPES):
            name = val
    name = name or lowered.get("x-ms-client-principal-name", "").strip()[:MAX_CLAIM_CHARS + 1]
    if len(name) > MAX_CLAIM_CHARS:
        raise Unauthorized("the principal's name is longer than any Entra name")
    if not name:
        raise Unauthorized("the principal carries no name claim")
    return Principal(
        name=name,
        identity_provider=str(document.get("auth_typ") or "aad"),
        roles=frozenset(roles),
    )


def refuse_cross_site(headers: Mapping[str, str]) -> None:
    """Forbidden for a request a browser made from another site (Sec-Fetch-Site): a signed-in
    operator's session cookie must not let another page act through the operator API (CSRF).
    The CLI sends no such header; the console's own requests are `same-origin`."""
    site = {k.lower(): v for k, v in headers.items()}.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        raise Forbidden("a request from another site is refused (Sec-Fetch-Site: "
                        f"{site}); use the console or the CLI")


def require(headers: Mapping[str, str], role: Role) -> Principal:
    """The principal, if it holds `role`: Unauthorized (401) without one, Forbidden (403) else;
    Forbidden too for a browser's request from another site (refuse_cross_site)."""
    refuse_cross_site(headers)
    principal = principal_from_headers(headers)
    if principal is None:
        raise Unauthorized("sign in: this route needs an authenticated operator")
    if not principal.has(role):
        held = ", ".join(sorted(principal.roles)) or "none"
        raise Forbidden(f"role {role.value} is required; {principal.name} holds: {held}")
    return principal


def encode_principal(name: str, roles: list[str], *, provider: str = "aad") -> str:
    """Build an X-MS-CLIENT-PRINCIPAL value (the CLI and tests use it with the dev principal)."""
    document = {
        "auth_typ": provider,
        "name_typ": "name",
        "role_typ": "roles",
        "claims": [{"typ": "name", "val": name}] + [{"typ": "roles", "val": r} for r in roles],
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


# ---------------------------------------------------------------------------------------------
# The alert webhook's Entra token (Azure Monitor "Secure Webhook")
#
# An action group with Secure Webhook sends `Authorization: Bearer <JWT>`, issued by Entra ID to
# the Azure Monitor service principal for the app registration named in the action, carrying
# the app role `ActionGroupsSecureWebhook` in its `roles` claim. /api/alerts keeps its function
# key as well: the token says Azure Monitor sent the request, the key that it is this route.

AUDIENCE_SETTING = "PITCREW_ALERT_TOKEN_AUDIENCE"
TENANT_SETTING = "PITCREW_ALERT_TOKEN_TENANT"
ROLE_SETTING = "PITCREW_ALERT_TOKEN_ROLE"
REQUIRED_SETTING = "PITCREW_ALERT_TOKEN_REQUIRED"
JWKS_URL_SETTING = "PITCREW_ALERT_TOKEN_JWKS_URL"
ALERT_AUTH_SETTINGS = (
    AUDIENCE_SETTING,
    TENANT_SETTING,
    ROLE_SETTING,
    REQUIRED_SETTING,
    JWKS_URL_SETTING,
)
DEFAULT_ALERT_ROLE = "ActionGroupsSecureWebhook"
TOKEN_LEEWAY_SECONDS = 60
MAX_TOKEN_CHARS = 8192
JWKS_TTL_SECONDS = 3600.0
JWKS_REFRESH_MIN_SECONDS = 300.0
"""An unknown key id refetches the key set (Entra rolls keys), at most this often."""
JWKS_TIMEOUT_SECONDS = 5.0
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$")


@dataclass(frozen=True)
class AlertTokenSettings:
    audiences: tuple[str, ...]
    tenant: str
    role: str
    required: bool
    jwks_url: str

    @property
    def issuers(self) -> tuple[str, str]:
        """Entra's v2.0 and v1.0 issuers for the tenant."""
        return (
            f"https://login.microsoftonline.com/{self.tenant}/v2.0",
            f"https://sts.windows.net/{self.tenant}/",
        )


def alert_token_settings(environ: Mapping[str, str] | None = None) -> AlertTokenSettings:
    """The alert-token settings; PolicyInvalid (503, naming the settings, never their values)
    when they contradict each other, so a half-configured app refuses rather than opens."""
    env = os.environ if environ is None else environ
    audiences = tuple(a.strip() for a in env.get(AUDIENCE_SETTING, "").split(",") if a.strip())
    tenant = env.get(TENANT_SETTING, "").strip()
    role = env.get(ROLE_SETTING, "").strip() or DEFAULT_ALERT_ROLE
    raw_required = env.get(REQUIRED_SETTING, "").strip().lower()
    problems: list[str] = []
    if raw_required in ("", "auto"):
        required = bool(audiences)
    elif raw_required in ("true", "1", "yes"):
        required = True
    elif raw_required in ("false", "0", "no"):
        required = False
    else:
        required = True
        problems.append(f"{REQUIRED_SETTING} must be true or false")
    if required and not audiences:
        problems.append(f"{REQUIRED_SETTING} is true but {AUDIENCE_SETTING} is not set")
    if audiences and not tenant:
        problems.append(f"{AUDIENCE_SETTING} is set but {TENANT_SETTING} is not")
    if tenant and not _TENANT.match(tenant):
        problems.append(f"{TENANT_SETTING} is not a tenant id or domain")
    jwks_url = env.get(JWKS_URL_SETTING, "").strip() or (
        f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"
    )
    if not _trusted_url(jwks_url):
        problems.append(f"{JWKS_URL_SETTING} must be an https URL (http only on loopback)")
    if problems:
        raise PolicyInvalid("app settings (alert token)", problems)
    return AlertTokenSettings(audiences, tenant, role, required, jwks_url)


def _trusted_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class AlertCaller:
    """Who sent an alert, from its validated token (ids only; never the token)."""

    app_id: str
    object_id: str
    tenant: str

    @property
    def actor(self) -> str:
        return f"app:{self.app_id or self.object_id or 'unknown'}"


def authenticate_alert(headers: Mapping[str, str]) -> AlertCaller | None:
    """Check the alert webhook's bearer token: the caller, or None when no token is required
    and none was sent. Unauthorized (401, with the reason) for a missing or invalid token;
    RetryLater (503) when Entra's signing keys cannot be fetched. The token itself never
    appears in an error, a log line or the audit."""
    settings = alert_token_settings()
    lowered = {k.lower(): v for k, v in headers.items()}
    authorization = lowered.get("authorization", "").strip()
    if not authorization:
        if settings.required:
            raise Unauthorized("a bearer token from Entra ID (Secure Webhook) is required")
        return None
    if not settings.audiences:
        # Tokens are not configured: the function key alone guards the route. A token sent
        # anyway cannot be checked, so it is ignored rather than trusted.
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized(f"the bearer token is longer than {MAX_TOKEN_CHARS} characters")
    claims = _verified_claims(token, settings)
    roles = claims.get("roles")
    if not isinstance(roles, list) or settings.role not in roles:
        raise Unauthorized(f"the token does not carry the app role {settings.role}")
    return AlertCaller(
        app_id=str(claims.get("appid") or claims.get("azp") or ""),
        object_id=str(claims.get("oid") or ""),
        tenant=str(claims.get("tid") or ""),
    )


def _verified_claims(token: str, settings: AlertTokenSettings) -> dict[str, Any]:
    import jwt  # PyJWT + cryptography: only alerts with a token need it (cold start)

    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Unauthorized("the bearer token is not a JWT") from None
    if header.get("alg") != "RS256":
        raise Unauthorized("the token's algorithm is not accepted (RS256 only)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("the token names no signing key (kid)")
    key = _JWKS.key(settings.jwks_url, kid)
    if key is None:
        raise Unauthorized("the token is signed with a key the tenant does not publish")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=list(settings.audiences),
            issuer=list(settings.issuers),
            leeway=TOKEN_LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthorized("the token is not valid yet (nbf)") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(f"the token's audience is not in {AUDIENCE_SETTING}") from None
    except jwt.InvalidIssuerError:
        raise Unauthorized(f"the token's issuer is not Entra ID for {TENANT_SETTING}") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("the token's signature does not verify") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"the token has no {exc.claim!r} claim") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"the token is invalid ({type(exc).__name__})") from None
    return claims


class _JwksCache:
    """Signing keys by JWKS URL: fetched on first use with a timeout, kept for JWKS_TTL_SECONDS,
    refetched early (at most every JWKS_REFRESH_MIN_SECONDS) when a token names an unknown key.
    A failed fetch is RetryLater: the sender retries, and pitcrew never answers 500 for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[str, tuple[float, dict[str, Any]]] = {}

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()

    def key(self, url: str, kid: str) -> Any | None:
        now = time.monotonic()
        with self._lock:
            cached = self._sets.get(url)
            if cached is not None:
                fetched_at, keys = cached
                fresh = now - fetched_at < JWKS_TTL_SECONDS
                if fresh and (kid in keys or now - fetched_at < JWKS_REFRESH_MIN_SECONDS):
                    return keys.get(kid)
            try:
                keys = self._fetch(url)
            except RetryLater:
                if cached is None or kid not in cached[1]:
                    raise
                # Entra unreachable but this key was published: keep using the keys we have,
                # and try again after the refresh interval rather than on every request.
                retry_at = now - JWKS_TTL_SECONDS + JWKS_REFRESH_MIN_SECONDS
                self._sets[url] = (retry_at, cached[1])
                return cached[1][kid]
            self._sets[url] = (time.monotonic(), keys)
            return keys.get(kid)

    @staticmethod
    def _fetch(url: str) -> dict[str, Any]:
        import httpx  # on first use: fetching Entra's signing keys (cold start)
        import jwt

        try:
            response = httpx.get(url, timeout=JWKS_TIMEOUT_SECONDS, follow_redirects=False)
        except httpx.HTTPError as exc:
            log.warning("alert token signing keys: fetch failed (%s)", type(exc).__name__)
            raise RetryLater("could not fetch Entra ID's signing keys; retry later") from None
        if response.status_code != 200:
            log.warning("alert token signing keys: fetch answered HTTP %d", response.status_code)
            raise RetryLater("could not fetch Entra ID's signing keys; retry later")
        try:
            document = response.json()
            listed = document["keys"]
            if not isinstance(listed, list):
                raise TypeError("keys is not a list")
        except (ValueError, KeyError, TypeError):
            log.warning("alert token signing keys: the answer is not a JWKS document")
            raise RetryLater("Entra ID's signing keys could not be read; retry later") from None
        keys: dict[str, Any] = {}
        for entry in listed:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA" or not entry.get("kid"):
                continue
            if entry.get("use", "sig") != "sig":
                continue
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm="RS256").key
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue
        return keys


_JWKS = _JwksCache()


def reset_alert_token_cache() -> None:
    """Forget fetched signing keys (tests; a settings change)."""
    _JWKS.clear()
