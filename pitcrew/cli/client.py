"""The operator's client for pitcrew's HTTP API, which every area of the CLI uses.

Where the app runs behind App Service Authentication, requests carry an Entra ID token for the
app (PITCREW_APP_ID_URI, obtained with azure-identity). Against `pitcrew dev
--allow-dev-principal`, PITCREW_DEV_PRINCIPAL="name:Role,Role" sends a development principal.
`api_client()` is the client an area command uses: the environment's, else the running
`pitcrew dev` host's (`.pitcrew/dev-host.json`, which `pitcrew dev` writes and removes).

Those credentials go only over https, or plain http to this machine (the local host), and the
Functions key only to the routes that take it: operator routes carry none.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from pitcrew.auth import encode_principal

DEFAULT_TIMEOUT = 30.0
# The routes behind a Functions key: the webhooks machines call (functions/intake.py). Every
# operator route is anonymous to the Functions host (Entra signs its callers in), so the key,
# a shared secret, is sent nowhere else.
KEYED_ROUTES = frozenset({("POST", "/api/events"), ("POST", "/api/alerts")})


class ApiError(RuntimeError):
    """The API refused or failed; the message says what it answered, in one line."""


def describe_http_error(exc: httpx.HTTPError, timeout: float | None = None) -> str:
    """What went wrong talking to a host, in a few words (no traceback, no URL query)."""
    detail = " ".join(str(exc).split())[:200]
    if isinstance(exc, httpx.ConnectTimeout):
        return f"could not connect within {timeout}s" if timeout else "connect timed out"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout}s" if timeout else "timed out waiting for an answer"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({detail or type(exc).__name__}); is the host running?"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return f"the connection closed before an answer ({detail or type(exc).__name__}); " \
            "did the host stop?"
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


@dataclass
class ApiClient:
    base_url: str
    function_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(
        cls,
        *,
        default_url: str | None = None,
        default_key: str | None = None,
        dev_principal: str | None = None,
    ) -> ApiClient:
        """`default_*` and `dev_principal` describe the running `pitcrew dev` host; the
        development principal is only ever sent to that host."""
        from_env = os.environ.get("PITCREW_URL", "").strip()
        url = from_env or default_url or "http://127.0.0.1:7071"
        # Before any credential is read or a token fetched: none may cross a network in clear.
        refuse_cleartext(url, "PITCREW_URL" if from_env else "the local host's URL")
        key = os.environ.get("PITCREW_FUNCTION_KEY") or default_key
        headers: dict[str, str] = {}
        if url != default_url:
            dev_principal = None
        dev_principal = os.environ.get("PITCREW_DEV_PRINCIPAL", "").strip() or dev_principal
        if dev_principal:

            name, _, roles = dev_principal.partition(":")
            headers["X-MS-CLIENT-PRINCIPAL"] = encode_principal(
                name, [r.strip() for r in roles.split(",") if r.strip()]
            )
        app_id_uri = os.environ.get("PITCREW_APP_ID_URI", "").strip()
        if app_id_uri:
            from azure.core.exceptions import ClientAuthenticationError
            from azure.identity import DefaultAzureCredential

            try:
                token = DefaultAzureCredential().get_token(f"{app_id_uri}/.default").token
            except ClientAuthenticationError as exc:
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ApiError(
                    f"cannot get a token for {app_id_uri}: {first_line[:200]} (az login?)"
                ) from None
            headers["Authorization"] = f"Bearer {token}"
        return cls(base_url=url.rstrip("/"), function_key=key, headers=headers)

    def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: Any = None
    ) -> Any:
        headers = dict(self.headers)
        if self.function_key and (method.upper(), path) in KEYED_ROUTES:
            headers["x-functions-key"] = self.function_key
        try:
            response = httpx.request(
                method,
                f"{self.base_url}{path}",
                params=params,
                json=json,
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise ApiError(
                f"{method} {self.base_url}{path} failed: {describe_http_error(exc, self.timeout)}"
            ) from None
        except httpx.InvalidURL as exc:
            raise ApiError(f"{self.base_url}{path} is not a usable URL: {exc}") from None
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = response.text
        if not response.is_success:
            message = body.get("message") if isinstance(body, dict) else str(body or "")
            message = " ".join(str(message).split())[:500]
            if not message:
                # The host's own answer (no function's): a path no route takes, e.g. a name
                # holding '/' or '..' that the URL resolved away.
                message = (f"the app answered with no detail ({response.reason_phrase}); check "
                           "the names given: no route takes this path" if
                           response.status_code == 404 else
                           f"the app answered with no detail ({response.reason_phrase})")
            raise ApiError(f"{method} {path}: HTTP {response.status_code}: {message}")
        wrong = _not_an_object(response)
        if wrong:
            raise ApiError(f"{method} {path}: the app answered {response.status_code} {wrong}, "
                           "not a JSON object (is PITCREW_URL the app?)")
        return body

    def get(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, *, json: Any = None, params: Mapping[str, str] | None = None) -> Any:
        return self.request("POST", path, json=json, params=params)



def _not_an_object(response: httpx.Response) -> str | None:
    """What a success answer holds instead of the JSON object every route answers (an auth
    proxy's sign-in page, another service at this URL), or None when it holds one."""
    media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        return f"with {media}" if media else "with no content type"
    if not response.content:
        return "with no body"
    try:
        body = response.json()
    except ValueError:
        return "with a body that is not JSON"
    if isinstance(body, dict):
        return None
    return "with a JSON array" if isinstance(body, list) else "with a bare JSON value"


def pages(client: Any, path: str, params: Mapping[str, str], key: str, *,
          continuation: str | None = None, every: bool = False,
          ) -> Iterator[dict[str, Any]]:
    """Each page of a list route (`{key: [...], "continuation": ...}`) through `client` (an
    ApiClient): the one from `continuation` (or the first), or with `every` it and all after.
    A page without its list, or a token that comes back again (the walk would never end), is
    an ApiError."""
    token = continuation
    seen = {token} if token else set()
    while True:
        body = client.get(path, params={**params, "continuation": token} if token else params)
        if not isinstance(body.get(key), list):
            raise ApiError(f"GET {path}: the app answered no {key!r} list")
        yield body
        token = body.get("continuation")
        if not every or not token:
            return
        if token in seen:
            raise ApiError(f"GET {path}: the app answered a continuation token it had given "
                           f"before, after {len(seen)} page(s); stopped rather than loop")
        seen.add(token)


def collect(client: Any, path: str, params: Mapping[str, str], key: str, *,
            continuation: str | None = None, every: bool = False,
            ) -> tuple[list[Any], str | None]:
    """The items under `key` of the pages `pages` walks, and the token of the page that
    follows them (None at the end)."""
    items: list[Any] = []
    body: dict[str, Any] = {}
    for body in pages(client, path, params, key, continuation=continuation, every=every):
        items += body[key]
    return items, body.get("continuation")


def segment(value: str) -> str:
    """A name or id as one segment of a route's path: '/', '?', '#' and '%' are encoded, and
    so are the dots of '.' and '..', which a URL would otherwise resolve away; what is given
    can then only reach the route it was given to, never another."""
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def refuse_cleartext(url: str, named: str) -> None:
    """ApiError unless `url` is https, or http to a loopback address (the local host): the
    requests carry a bearer token or a principal header, never to cross a network in clear."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
    except ValueError:  # e.g. an unclosed '[' of an IPv6 address
        scheme = host = ""
    if scheme == "https" and host:
        return
    if scheme == "http" and _loopback(host):
        return
    # Scheme and host only: the rest of a URL may hold a user's password.
    shown = f"{scheme}://{host}" if scheme and host else "no URL with a scheme and a host"
    raise ApiError(f"{named} is {shown}: it must be https://, or http:// to this machine "
                   "(127.0.0.1, ::1 or localhost) for the local host; no credential is sent "
                   "in clear over a network")


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Where `pitcrew dev` says which host runs, with its key (and its development principal).
DEV_STATE = Path(".pitcrew") / "dev-host.json"


def dev_host() -> dict[str, str]:
    """The running `pitcrew dev` host (url, key, devPrincipal), or {} when none runs here."""
    try:
        return dict(json.loads(DEV_STATE.read_text()))
    except (OSError, ValueError):
        return {}


def api_client() -> ApiClient:
    """The client for the app's API: PITCREW_URL and friends, else the running dev host."""
    running = dev_host()
    return ApiClient.from_env(
        default_url=running.get("url"),
        default_key=running.get("key"),
        dev_principal=running.get("devPrincipal"),
    )
