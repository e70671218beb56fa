"""Links that reach a person: absolute, https, built from the app's public base URL.

`PITCREW_PUBLIC_BASE_URL` (e.g. `https://pitcrew-prod.azurewebsites.net`) is where operators
open pitcrew; every link pitcrew puts in a notification or an API answer is built from it, and
a link from outside (an alert's custom properties) is kept only when it is https.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, urlsplit

PUBLIC_BASE_URL_SETTING = "PITCREW_PUBLIC_BASE_URL"
# Where the documentation is published: a runbook reaches a person as an absolute https link,
# never as a path into a repository they may not have checked out.
DOCS_URL = "https://github.com/pitcrew/pitcrew/blob/main/docs/"


def docs_url(page: str) -> str:
    """The published documentation page `page` (e.g. `runbooks/quota-increase.md`)."""
    return DOCS_URL + page.lstrip("/")


def public_base_url() -> str | None:
    """The configured base URL without a trailing slash, or None when unset or not https
    (loopback http is accepted for the local host)."""
    raw = os.environ.get(PUBLIC_BASE_URL_SETTING, "").strip().rstrip("/")
    if not raw:
        return None
    parts = urlsplit(raw)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme == "https" or (parts.scheme == "http" and loopback):
        return raw
    return None


def public_url(path: str, **query: str) -> str | None:
    """`<base>/<path>?k=v` or None when no public base URL is configured."""
    base = public_base_url()
    if base is None:
        return None
    url = f"{base}/{path.lstrip('/')}"
    if query:
        url += "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query.items())
    return url


def location(path: str) -> str:
    """A `Location` header for a resource the API just created: absolute https from the public
    base URL, never from the request's Host header (a caller does not choose where links point);
    the path alone when no base URL is configured."""
    return public_url(path) or path


_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def safe_link(candidate: object) -> str | None:
    """`candidate` when it is an absolute https URL with a host and no credentials or control
    characters, else None: links from outside never carry `javascript:`, `data:` or `http:`."""
    if not isinstance(candidate, str):
        return None
    value = candidate.strip()
    if not value or len(value) > 2048 or _SPACE_OR_CONTROL.search(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname or "@" in parts.netloc:
        return None
    return value
