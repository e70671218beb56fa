"""Operator identity: roles checked in one place; the principal header is trusted only when
App Service Authentication is on."""

from __future__ import annotations

import base64
import json

import pytest

from pitcrew.auth import Role, encode_principal, principal_from_headers, require
from pitcrew.errors import Forbidden, Unauthorized


@pytest.fixture(autouse=True)
def _easy_auth_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")


def header(name: str, roles: list[str]) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": encode_principal(name, roles)}


def test_no_principal_is_401() -> None:
    with pytest.raises(Unauthorized):
        require({}, Role.READER)


def test_wrong_role_is_403() -> None:
    with pytest.raises(Forbidden, match="role Rotator is required; alice holds: Reader"):
        require(header("alice", ["Reader"]), Role.ROTATOR)


@pytest.mark.parametrize(
    ("roles", "needed", "allowed"),
    [
        (["Reader"], Role.READER, True),
        (["Operator"], Role.READER, True),
        (["Rotator"], Role.READER, True),
        (["Operator"], Role.ROTATOR, False),
        (["Rotator"], Role.OPERATOR, False),
        (["Reader"], Role.OPERATOR, False),
        (["Contributor"], Role.READER, False),
    ],
)
def test_role_grants(roles: list[str], needed: Role, allowed: bool) -> None:
    if allowed:
        assert require(header("bob", roles), needed).name == "bob"
    else:
        with pytest.raises(Forbidden):
            require(header("bob", roles), needed)


def test_real_easy_auth_shape() -> None:
    document = {
        "auth_typ": "aad",
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        "claims": [
            {
                "typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                "val": "sre@contoso.com",
            },
            {"typ": "roles", "val": "Operator"},
        ],
    }
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    principal = require({"x-ms-client-principal": encoded}, Role.OPERATOR)
    assert principal.actor == "user:sre@contoso.com"


def test_header_ignored_without_app_service_authentication(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    assert principal_from_headers(header("mallory", ["Operator"])) is None
    with pytest.raises(Unauthorized):
        require(header("mallory", ["Operator"]), Role.READER)


def test_garbage_header_is_401() -> None:
    with pytest.raises(Unauthorized, match="base64"):
        principal_from_headers({"X-MS-CLIENT-PRINCIPAL": "%%%not-base64%%%"})
