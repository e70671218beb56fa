"""Operator identity: the principal App Service Authentication puts in X-MS-CLIENT-PRINCIPAL,
and the one place roles are checked.

The header is trusted only when App Service Authentication is on (WEBSITE_AUTH_ENABLED), because
only then does the platform strip client-sent copies of it. The local host (`pitcrew dev`)
emulates that: it strips the header unless started with --allow-dev-principal.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pitcrew.errors import Forbidden, Unauthorized

PRINCIPAL_HEADER = "x-ms-client-principal"
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
    try:
        document = json.loads(base64.b64decode(encoded, validate=False))
    except (binascii.Error, ValueError):
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
        typ, val = str(claim.get("typ", "")), str(claim.get("val", ""))
        if typ == role_type or typ in ROLE_CLAIM_TYPES:
            roles.add(val)
        elif not name and (typ == name_type or typ in NAME_CLAIM_TYPES):
            name = val
    name = name or lowered.get("x-ms-client-principal-name", "").strip()
    if not name:
        raise Unauthorized("the principal carries no name claim")
    return Principal(
        name=name,
        identity_provider=str(document.get("auth_typ") or "aad"),
        roles=frozenset(roles),
    )


def require(headers: Mapping[str, str], role: Role) -> Principal:
    """The principal, if it holds `role`: Unauthorized (401) without one, Forbidden (403) else."""
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
