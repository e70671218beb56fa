"""The operator console: static assets (index.html, ES modules, app.css) served from this
package by `functions/console.py` under /api/console, behind the same authentication and roles
as the operator API, with a strict Content-Security-Policy. The console calls only the operator
API; `me` answers who is signed in (`GET /api/me`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

from pitcrew.auth import Principal, Role, principal_from_headers, refuse_cross_site
from pitcrew.errors import Forbidden, Unauthorized
from pitcrew.http.errors import HttpResult, http_errors

ASSETS = Path(__file__).resolve().parent
CONSOLE_PATH = "/api/console/"
# Where App Service Authentication signs a browser in (the local host emulates it).
SIGN_IN = "/.auth/login/aad?post_login_redirect_uri=/api/console/"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ASSET_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}\.(?:js|css|svg)$")


@dataclass(frozen=True)
class StaticResult:
    """A console response: bytes with their content type and the console's security headers."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=lambda: dict(SECURITY_HEADERS))


@cache
def _read(name: str) -> bytes | None:
    path = ASSETS / name
    return path.read_bytes() if path.is_file() else None


def asset_names() -> list[str]:
    """The files the console serves (besides index.html)."""
    return sorted(p.name for p in ASSETS.iterdir() if _ASSET_NAME.match(p.name))


def _page(status: int, title: str, text: str, link: tuple[str, str] | None = None) -> StaticResult:
    """A small static page (no API data in it, no script)."""
    anchor = f'<p><a href="{escape(link[0])}">{escape(link[1])}</a></p>' if link else ""
    html = (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{CONSOLE_PATH}app.css"><title>{escape(title)}</title>'
        f'<main class="page"><h1>{escape(title)}</h1><p>{escape(text)}</p>{anchor}</main></html>'
    )
    return StaticResult(status, html.encode(), _TYPES[".html"])


def _top_level_navigation(headers: Mapping[str, str]) -> bool:
    """A browser opening a page in a tab (a link, a typed URL, a sign-in redirect), as opposed
    to a fetch, a script, a stylesheet or a frame (Sec-Fetch-Mode and Sec-Fetch-Dest)."""
    lower = {k.lower(): v.strip().lower() for k, v in headers.items()}
    return lower.get("sec-fetch-mode") == "navigate" and lower.get("sec-fetch-dest") == "document"


def _signed_in(headers: Mapping[str, str], *, index: bool = False) -> Principal | StaticResult:
    """The principal holding Reader, or the page that says why not. Only the index page may be
    opened from another site (a link in a notification, the portal, Entra ID's sign-in
    redirects), and only as a top-level navigation: it changes nothing and reads nothing but who
    is signed in, and it may not be framed (frame-ancestors 'none'). Its assets and the API keep
    refusing other sites."""
    try:
        if not (index and _top_level_navigation(headers)):
            refuse_cross_site(headers)
        principal = principal_from_headers(headers)
    except Forbidden as exc:
        return _page(403, "Refused", str(exc))
    except Unauthorized as exc:
        return _page(401, "Sign in", str(exc), (SIGN_IN, "Sign in"))
    if principal is None:
        return _page(401, "Sign in to pitcrew",
                     "The console needs a signed-in operator (App Service Authentication).",
                     (SIGN_IN, "Sign in"))
    if not principal.has(Role.READER):
        held = ", ".join(sorted(principal.roles)) or "none"
        return _page(403, "No pitcrew role",
                     f"The console needs the role Reader (or Operator or Rotator); "
                     f"{principal.name} holds: {held}.")
    return principal


def serve(headers: Mapping[str, str], asset: str | None = None) -> StaticResult:
    """`GET /api/console` (index.html) or `GET /api/console/{asset}`: Reader at least."""
    name = "index.html" if asset in (None, "", "index.html") else str(asset)
    signed_in = _signed_in(headers, index=name == "index.html")
    if isinstance(signed_in, StaticResult):
        return signed_in
    if name != "index.html" and not _ASSET_NAME.match(name):
        return _page(404, "Not found", "The console has no such file.")
    body = _read(name)
    if body is None:
        return _page(404, "Not found", "The console has no such file.")
    return StaticResult(200, body, _TYPES[Path(name).suffix])


@http_errors
def me(headers: Mapping[str, str]) -> HttpResult:
    """`GET /api/me`: who is signed in, the roles they hold and what those allow."""
    refuse_cross_site(headers)
    principal = principal_from_headers(headers)
    if principal is None:
        raise Unauthorized("sign in: this route needs an authenticated operator")
    body: dict[str, Any] = {
        "name": principal.name,
        "actor": principal.actor,
        "identityProvider": principal.identity_provider,
        "roles": sorted(principal.roles),
        "can": {role.value: principal.has(role) for role in Role},
    }
    return HttpResult(200, body, {"Cache-Control": "no-store"})
