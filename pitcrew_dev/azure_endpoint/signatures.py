"""Data-plane signature checks, as the services define them, against the keys the endpoint holds.

Pure functions, no HTTP: each takes what arrived and the candidate keys (name -> value) and returns
the name of the key that signed the request, or raises SignatureError. Error reasons never include
a key, a computed signature, or the signature that arrived.

- Cosmos DB master-key auth: HMAC-SHA256 with the base64-decoded key over
  "verb\\nresourcetype\\nresourcelink\\ndate\\n\\n" (verb, type and date lower-cased, link as is);
  header `authorization: type=master&ver=1.0&sig=<base64>`, URL-encoded.
- Storage SharedKey (API 2009-09-19 and later): HMAC-SHA256 with the base64-decoded key over
  VERB, the eleven standard headers (Content-Length "0" as empty), the canonicalized x-ms-*
  headers and the canonicalized resource "/account/path" plus sorted "\\nname:value" query lines.
- Service Bus / Event Hubs SAS: HMAC-SHA256 with the key's UTF-8 bytes (not base64-decoded: that
  is how the service does it) over "<url-encoded sr>\\n<se>"; token
  `SharedAccessSignature sr=..&sig=..&se=..&skn=..`; sr must be a prefix of the URL called.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, quote_plus, unquote, unquote_plus

# Services reject requests whose date is too far from their clock; Storage and Cosmos use 15 min.
MAX_CLOCK_SKEW_SECONDS = 15 * 60
STORAGE_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


class SignatureError(Exception):
    """The request is not signed by any current key. The message is safe to return to a caller."""


def _hmac_b64(key: bytes, message: str) -> str:
    return base64.b64encode(
        hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    ).decode()


def _decode_key(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        # Keys the endpoint holds are always base64; this would be a seeding mistake.
        raise SignatureError("a configured key is not base64") from None


def _match(candidates: Iterable[tuple[str, str]], presented: str) -> str | None:
    """The name of the first candidate whose signature equals `presented` (constant-time)."""
    found = None
    for name, expected in candidates:
        if hmac.compare_digest(expected.encode(), presented.encode()) and found is None:
            found = name
    return found


def _check_date(raw: str | None, now: float | None) -> None:
    if not raw:
        raise SignatureError("the x-ms-date header is missing")
    try:
        stamp = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        raise SignatureError(f"the x-ms-date header {raw[:64]!r} is not an RFC 1123 date") from None
    if abs((now if now is not None else time.time()) - stamp) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureError("the request date is more than 15 minutes from the server's clock")


# --- Cosmos DB ---------------------------------------------------------------------------------


def cosmos_resource(path: str) -> tuple[str, str]:
    """(resource type, resource link) of a Cosmos DB REST path relative to the account root."""
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments:
        return "", ""
    if len(segments) % 2:  # /dbs, /dbs/{db}/colls: a feed; the link is its parent
        return segments[-1], "/".join(segments[:-1])
    return segments[-2], "/".join(segments)


def cosmos_string_to_sign(verb: str, resource_type: str, resource_link: str, date: str) -> str:
    return f"{verb.lower()}\n{resource_type.lower()}\n{resource_link}\n{date.lower()}\n\n"


def cosmos_authorization(
    key: str, verb: str, resource_type: str, resource_link: str, date: str
) -> str:
    """The `authorization` header value a Cosmos DB client sends, for tests and probes."""
    signature = _hmac_b64(
        _decode_key(key), cosmos_string_to_sign(verb, resource_type, resource_link, date)
    )
    return quote_plus(f"type=master&ver=1.0&sig={signature}")


def verify_cosmos(
    authorization: str | None,
    verb: str,
    path: str,
    date: str | None,
    keys: Mapping[str, str],
    now: float | None = None,
) -> str:
    if not authorization:
        raise SignatureError("the authorization header is missing")
    fields = dict(part.split("=", 1) for part in unquote(authorization).split("&") if "=" in part)
    if fields.get("type") != "master" or fields.get("ver") != "1.0" or not fields.get("sig"):
        raise SignatureError("expected authorization 'type=master&ver=1.0&sig=...'")
    _check_date(date, now)
    assert date is not None
    resource_type, resource_link = cosmos_resource(path)
    message = cosmos_string_to_sign(verb, resource_type, resource_link, date)
    # Read-only keys may only read, as in the service.
    usable = {
        name: value
        for name, value in keys.items()
        if verb.upper() in ("GET", "HEAD") or "Readonly" not in name
    }
    matched = _match(
        ((name, _hmac_b64(_decode_key(value), message)) for name, value in usable.items()),
        fields["sig"].replace(" ", "+"),  # a '+' left unencoded arrives as a space
    )
    if matched is None:
        raise SignatureError(
            "The input authorization token can't serve the request. The wrong key is being used "
            f"or the expected payload is not built as per the protocol. Server used the "
            f"following payload to sign: {message!r}"
        )
    return matched


# --- Storage SharedKey -------------------------------------------------------------------------


def storage_string_to_sign(
    method: str, headers: Mapping[str, str], account: str, raw_path: str, query: str
) -> str:
    lowered = {name.lower(): value for name, value in headers.items() if value}
    if lowered.get("content-length") == "0":
        lowered.pop("content-length")
    standard = "\n".join(lowered.get(name, "") for name in STORAGE_SIGNED_HEADERS)
    x_ms = "".join(
        f"{name}:{lowered[name]}\n" for name in sorted(n for n in lowered if n.startswith("x-ms-"))
    )
    grouped: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        grouped.setdefault(name.lower(), []).append(value)
    resource_query = "".join(
        f"\n{name}:{','.join(sorted(values))}" for name, values in sorted(grouped.items())
    )
    return f"{method.upper()}\n{standard}\n{x_ms}/{account}{raw_path}{resource_query}"


def verify_storage_shared_key(
    authorization: str | None,
    method: str,
    headers: Mapping[str, str],
    account: str,
    raw_path: str,
    query: str,
    keys: Mapping[str, str],
    now: float | None = None,
) -> str:
    if not authorization:
        raise SignatureError("the Authorization header is missing")
    scheme, _, credential = authorization.partition(" ")
    signed_account, _, signature = credential.partition(":")
    if scheme != "SharedKey" or not signature:
        raise SignatureError("expected Authorization 'SharedKey account:signature'")
    if signed_account != account:
        raise SignatureError(
            f"the request is signed for account {signed_account!r}, not {account!r}"
        )
    lowered = {name.lower(): value for name, value in headers.items()}
    _check_date(lowered.get("x-ms-date") or lowered.get("date"), now)
    message = storage_string_to_sign(method, headers, account, raw_path, query)
    matched = _match(
        ((name, _hmac_b64(_decode_key(value), message)) for name, value in keys.items()),
        signature,
    )
    if matched is None:
        # Storage itself returns the string-to-sign: it holds no key material and is the one
        # clue that makes a canonicalization mismatch debuggable.
        raise SignatureError(
            "Server failed to authenticate the request. The MAC signature found in the request "
            f"is not the same as any computed signature. Server used following string to sign: "
            f"{message!r}."
        )
    return matched


# --- Service Bus / Event Hubs SAS ---------------------------------------------------------------


@dataclass(frozen=True)
class SasToken:
    resource: str  # decoded sr
    resource_as_sent: str  # sr exactly as it appeared in the token (still URL-encoded)
    signature: str
    expiry: int
    key_name: str


def parse_sas(authorization: str | None) -> SasToken:
    if not authorization:
        raise SignatureError("the Authorization header is missing")
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != "SharedAccessSignature" or not rest:
        raise SignatureError(
            "expected Authorization 'SharedAccessSignature sr=..&sig=..&se=..&skn=..'"
        )
    raw = dict(part.split("=", 1) for part in rest.split("&") if "=" in part)
    missing = [name for name in ("sr", "sig", "se", "skn") if not raw.get(name)]
    if missing:
        raise SignatureError(f"the SAS token lacks {', '.join(missing)}")
    try:
        expiry = int(raw["se"])
    except ValueError:
        raise SignatureError("the SAS token's se is not an integer") from None
    return SasToken(
        resource=unquote_plus(raw["sr"]),
        resource_as_sent=raw["sr"],
        signature=unquote(raw["sig"]),
        expiry=expiry,
        key_name=unquote_plus(raw["skn"]),
    )


def _without_scheme(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/").lower()


def sas_string_candidates(token: SasToken) -> list[str]:
    """The strings a client may have signed for this token.

    The service signs over sr exactly as sent; clients differ in how they encode it (Python and
    .NET use upper-case escapes, some older SDKs lower-case), so accept the form as sent and both
    canonical re-encodings of the decoded sr.
    """
    canonical = quote_plus(token.resource)
    lower = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), canonical)
    forms = dict.fromkeys([token.resource_as_sent, canonical, lower])
    return [f"{form}\n{token.expiry}" for form in forms]


def verify_sas(
    authorization: str | None,
    request_url: str,
    rules: Mapping[str, Mapping[str, str]],
    now: float | None = None,
) -> tuple[str, str]:
    """(rule name, key name) that signed the token. `rules`: rule name -> key name -> key."""
    token = parse_sas(authorization)
    if token.expiry <= (now if now is not None else time.time()):
        raise SignatureError("the SAS token has expired")
    if not _without_scheme(request_url).startswith(_without_scheme(token.resource)):
        raise SignatureError(
            f"the SAS token's resource {token.resource!r} does not cover {request_url!r}"
        )
    keys = rules.get(token.key_name)
    if keys is None:
        raise SignatureError(f"no authorization rule {token.key_name!r} covers this resource")
    messages = sas_string_candidates(token)
    matched = _match(
        (
            (name, _hmac_b64(value.encode("utf-8"), message))
            for name, value in keys.items()
            for message in messages
        ),
        token.signature,
    )
    if matched is None:
        raise SignatureError(
            f"InvalidSignature: the token is not signed by a current key of rule {token.key_name!r}"
        )
    return token.key_name, matched
