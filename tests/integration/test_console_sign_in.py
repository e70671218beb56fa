"""The local host's App Service Authentication sign-in for browsers: a development principal
in an HttpOnly, SameSite=Lax cookie that the host turns into X-MS-CLIENT-PRINCIPAL, only with
--allow-dev-principal, never an open redirect."""

from __future__ import annotations

import os

import pytest
from starlette.testclient import TestClient

import function_app
from pitcrew.auth import encode_principal
from pitcrew_dev.host import build_host


@pytest.fixture(autouse=True)
def _storage(storage_connection_string: str) -> None:
    """The host resolves its queue bindings' connection (Azurite)."""


def _client(allow: bool) -> TestClient:
    host = build_host(function_app.app, function_key="k", allow_dev_principal=allow,
                      settings=dict(os.environ))
    return TestClient(host, follow_redirects=False)


def test_the_local_sign_in_sets_a_lax_cookie_the_host_honours() -> None:
    client = _client(allow=True)
    assert client.get("/api/me").status_code == 401
    login = client.get("/.auth/login/aad",
                       params={"name": "eve@example.com", "roles": "Reader",
                               "post_login_redirect_uri": "/api/console/#/audit"})
    assert login.status_code == 302 and login.headers["location"] == "/api/console/#/audit"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    me = client.get("/api/me").json()
    assert me["name"] == "eve@example.com" and me["can"]["Operator"] is False
    assert client.get("/.auth/me").json()[0]["user_id"] == "eve@example.com"
    assert client.get("/console").headers["location"] == "/api/console/"
    client.get("/.auth/logout")
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil",
                                    "javascript:alert(1)"])
def test_no_open_redirect(target: str) -> None:
    login = _client(allow=True).get("/.auth/login/aad",
                                    params={"post_login_redirect_uri": target})
    assert login.headers["location"] == "/api/console/"


def test_no_sign_in_without_the_dev_principal() -> None:
    client = _client(allow=False)
    assert client.get("/.auth/login/aad").status_code == 403
    client.cookies.set("pitcrew_dev_auth", encode_principal("x", ["Operator"]))
    assert client.get("/api/me").status_code == 401
    bad = _client(allow=True).get("/.auth/login/aad", params={"roles": "<b>"})
    assert bad.status_code == 400
