"""The console's server side: assets only from the package, Reader at least, a strict CSP on
every answer, `GET /api/me`, cross-site browser requests refused."""

from __future__ import annotations

import pytest

from pitcrew import console
from pitcrew.auth import Role, encode_principal, require
from pitcrew.errors import Forbidden


def _as(*roles: str, name: str = "ops@example.com") -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": encode_principal(name, list(roles))}


@pytest.fixture(autouse=True)
def _auth_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")


def test_assets_are_served_with_a_strict_policy() -> None:
    index = console.serve(_as("Reader"))
    assert index.status == 200 and index.content_type.startswith("text/html")
    assert b'src="/api/console/app.js"' in index.body and b"<script>" not in index.body
    policy = index.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy
    for name in console.asset_names():
        served = console.serve(_as("Reader"), name)
        assert served.status == 200, name
        assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert {"app.js", "api.js", "dom.js", "app.css"} <= set(console.asset_names())


@pytest.mark.parametrize("name", ["../auth.py", "__init__.py", "..%2F__init__.py", "app.js/",
                                  "APP.JS", ".app.js", "a" * 60 + ".js", "index.htm", "x.js"])
def test_nothing_but_the_assets(name: str) -> None:
    answer = console.serve(_as("Reader"), name)
    assert answer.status == 404
    assert answer.headers["Content-Security-Policy"] == console.CONTENT_SECURITY_POLICY


def test_who_may_open_the_console() -> None:
    anonymous = console.serve({})
    assert anonymous.status == 401 and b"/.auth/login/aad" in anonymous.body
    assert console.serve(_as()).status == 403
    assert console.serve(_as("Operator")).status == 200  # Operator implies Reader
    cross = console.serve({**_as("Reader"), "Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403


def test_me_says_who_and_what_the_roles_allow() -> None:
    answer = console.me(_as("Operator"))
    assert answer.status == 200
    assert answer.body["name"] == "ops@example.com"
    assert answer.body["roles"] == ["Operator"]
    assert answer.body["can"] == {"Reader": True, "Operator": True, "Rotator": False}
    assert console.me({}).status == 401
    assert console.me(_as()).body["can"] == {"Reader": False, "Operator": False, "Rotator": False}


@pytest.mark.parametrize("site", ["cross-site", "same-site", "CROSS-SITE"])
def test_operator_routes_refuse_other_sites(site: str) -> None:
    with pytest.raises(Forbidden, match="another site"):
        require({**_as("Operator"), "Sec-Fetch-Site": site}, Role.READER)
    for allowed in ("same-origin", "none", ""):
        require({**_as("Operator"), "Sec-Fetch-Site": allowed}, Role.OPERATOR)
