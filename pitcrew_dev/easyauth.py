"""App Service Authentication's browser side, as the local host plays it (development only).

In Azure a browser signs in at `/.auth/login/aad`, App Service keeps the session in a cookie and
hands the app `X-MS-CLIENT-PRINCIPAL` on each request. With `--allow-dev-principal` the local
host does the same for loopback browsers, without Entra: `/.auth/login/<provider>` sets an
HttpOnly, SameSite=Lax cookie holding a development principal (`?name=&roles=`, else the
default below), the host turns the cookie into the header, `/.auth/me` says who it is and
`/.auth/logout` forgets it. `/console` leads to the console. Without --allow-dev-principal, or
from another machine, none of it works (403), as the header itself is refused then.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from pitcrew.auth import encode_principal

COOKIE = "pitcrew_dev_auth"
CONSOLE = "/api/console/"
DEFAULT_NAME = "developer@localhost"
DEFAULT_ROLES = ("Reader", "Operator", "Rotator")
_NAME = re.compile(r"^[\w.@+-]{1,120}$")
_ROLE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")


def _refused() -> Response:
    return JSONResponse(
        {"error": "the development sign-in needs `pitcrew dev --allow-dev-principal` and a "
                  "browser on this machine"},
        status_code=403,
    )


def _local_path(raw: str | None) -> str:
    """Where to go after signing in or out: a path on this host only (no open redirect)."""
    if raw and raw.startswith("/") and not raw.startswith(("//", "/\\")) and len(raw) < 512:
        return raw
    return CONSOLE


def login(request: Request, allowed: bool) -> Response:
    """`GET /.auth/login/<provider>?name=&roles=A,B&post_login_redirect_uri=/path`."""
    if not allowed:
        return _refused()
    query = request.query_params
    name = (query.get("name") or DEFAULT_NAME).strip()
    if not _NAME.match(name):
        return JSONResponse({"error": "name: letters, digits and . _ @ + - (at most 120)"},
                            status_code=400)
    raw_roles = query.get("roles")
    roles = DEFAULT_ROLES if raw_roles is None else tuple(
        r.strip() for r in raw_roles.split(",") if r.strip())
    if len(roles) > 10 or not all(_ROLE.match(r) for r in roles):
        return JSONResponse({"error": "roles: at most 10 role names, comma-separated"},
                            status_code=400)
    response = RedirectResponse(_local_path(query.get("post_login_redirect_uri")), 302)
    response.set_cookie(COOKIE, encode_principal(name, list(roles)), httponly=True,
                        samesite="lax", path="/")
    return response


def logout(request: Request, allowed: bool) -> Response:
    """`GET /.auth/logout?post_logout_redirect_uri=/path`."""
    if not allowed:
        return _refused()
    response = RedirectResponse(
        _local_path(request.query_params.get("post_logout_redirect_uri") or "/.auth/me"), 302)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


def principal_header(request: Request) -> str | None:
    """The X-MS-CLIENT-PRINCIPAL value the session cookie stands for, if any."""
    value = request.cookies.get(COOKIE, "")
    if not value or len(value) > 4096:
        return None
    try:
        json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None
    return value


def me(request: Request, allowed: bool) -> Response:
    """`GET /.auth/me`: the signed-in principal in App Service's shape, `[]` when none."""
    if not allowed:
        return _refused()
    value = principal_header(request)
    if value is None:
        return JSONResponse([])
    document = json.loads(base64.b64decode(value))
    return JSONResponse([{"provider_name": document.get("auth_typ"),
                          "user_id": next((c["val"] for c in document.get("claims", [])
                                           if c.get("typ") == "name"), ""),
                          "user_claims": document.get("claims", [])}])


def console(request: Request, allowed: bool) -> Response:
    """`GET /console`: the console, signing the development principal in first if needed."""
    if allowed and principal_header(request) is None:
        return RedirectResponse(f"/.auth/login/aad?post_login_redirect_uri={CONSOLE}", 302)
    return RedirectResponse(CONSOLE, 302)
