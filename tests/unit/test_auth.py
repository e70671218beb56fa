"""Operator identity: roles checked in one place; the principal header is trusted only when
App Service Authentication is on."""

from __future__ import annotations

import base64
import json

import pytest

from pitcrew.auth import (
    Role,
    alert_token_settings,
    encode_principal,
    principal_from_headers,
    require,
)
from pitcrew.errors import Forbidden, PolicyInvalid, Unauthorized


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


def _raw_principal(document: bytes) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(document).decode()}


@pytest.mark.parametrize("document", [
    b"[" * 4500,  # nesting past what json's recursion takes
    b'{"claims": ' + b"1" * 5000 + b"}",  # an integer int() refuses
    b'{"claims": [{"typ": "name", "val": [' + b",".join([b'"a"'] * 10_000) + b"]}, "
    b'{"typ": "roles", "val": "Operator"}]}',  # a name no Table property holds
    b'{"claims": [{"typ": "name", "val": "' + b"n" * 5000 + b'"}]}',
    b"{}" + b" " * 200_000,
])
def test_a_principal_no_front_end_writes_is_401_not_a_crash(document: bytes) -> None:
    with pytest.raises(Unauthorized):
        principal_from_headers(_raw_principal(document))


def test_a_name_claim_that_is_not_text_does_not_name_the_principal() -> None:
    document = {"claims": [{"typ": "name", "val": {"x": 1}}, {"typ": "name", "val": "alice"},
                           {"typ": "roles", "val": "Reader"}]}
    principal = principal_from_headers(_raw_principal(json.dumps(document).encode()))
    assert principal is not None and principal.name == "alice"


# ------------------------------------------------------------------ alert webhook token settings

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def test_alert_token_off_without_settings() -> None:
    settings = alert_token_settings({})
    assert settings.required is False and settings.audiences == ()


def test_alert_token_settings_parse() -> None:
    settings = alert_token_settings({
        "PITCREW_ALERT_TOKEN_AUDIENCE":
            " api://pitcrew-alerts , 3c1a7c0e-0000-4000-8000-00000000a1e7,",
        "PITCREW_ALERT_TOKEN_TENANT": TENANT,
    })
    assert settings.audiences == ("api://pitcrew-alerts", "3c1a7c0e-0000-4000-8000-00000000a1e7")
    assert settings.required is True
    assert settings.role == "ActionGroupsSecureWebhook"
    assert settings.issuers == (
        f"https://login.microsoftonline.com/{TENANT}/v2.0",
        f"https://sts.windows.net/{TENANT}/",
    )
    assert settings.jwks_url == f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PITCREW_ALERT_TOKEN_AUDIENCE": "api://x"}, "PITCREW_ALERT_TOKEN_TENANT"),
        ({"PITCREW_ALERT_TOKEN_REQUIRED": "true"}, "PITCREW_ALERT_TOKEN_AUDIENCE"),
        ({"PITCREW_ALERT_TOKEN_REQUIRED": "maybe"}, "PITCREW_ALERT_TOKEN_REQUIRED"),
        ({"PITCREW_ALERT_TOKEN_AUDIENCE": "api://x", "PITCREW_ALERT_TOKEN_TENANT": "a/b"},
         "PITCREW_ALERT_TOKEN_TENANT"),
        ({"PITCREW_ALERT_TOKEN_AUDIENCE": "api://x", "PITCREW_ALERT_TOKEN_TENANT": TENANT,
          "PITCREW_ALERT_TOKEN_JWKS_URL": "http://keys.example/keys"},
         "PITCREW_ALERT_TOKEN_JWKS_URL"),
    ],
)
def test_contradictory_alert_token_settings_refuse(env: dict[str, str], named: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        alert_token_settings(env)
    assert any(named in p for p in caught.value.problems)
