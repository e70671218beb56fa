"""One way to page every list pitcrew serves: a `limit`, an opaque `continuation` token, and
a Table query read only as far as the page needs.

A list answers `{"<items>": [...], "continuation": "<token>" | null}`; the caller passes the
token back as `?continuation=` for the next page. The token wraps Table storage's own
continuation (next partition and row key), so a page costs the round trips it needs and no
more, and it is checked on the way in: a forged or truncated token is a 400, never a 500.
The Table query behind a page is `pitcrew.azure.tables.paging.query_page`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pitcrew.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_TOKEN_CHARS = 2048
CONTINUATION_PARAM = "continuation"
NOT_OURS = "is not a continuation token pitcrew issued"


@dataclass(frozen=True)
class Page(Generic[T]):
    """Items of one page and the token for the next (None on the last page)."""

    items: list[T] = field(default_factory=list)
    continuation: str | None = None

    def map(self, convert: Callable[[T], Any]) -> Page[Any]:
        return Page([convert(item) for item in self.items], self.continuation)

    def body(self, key: str, **extra: Any) -> dict[str, Any]:
        """The JSON body of a list route: `{key: items, "continuation": token, **extra}`."""
        return {key: self.items, CONTINUATION_PARAM: self.continuation, **extra}


def encode_token(state: Mapping[str, Any]) -> str:
    raw = json.dumps(dict(state), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(raw: str | None, *, field_name: str = CONTINUATION_PARAM) -> dict[str, Any] | None:
    """The state inside a continuation token, or None for the first page; InvalidInput when
    the token was not made by `encode_token`."""
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if len(raw) > MAX_TOKEN_CHARS or not raw.isascii():
        raise InvalidInput(field_name, NOT_OURS)
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        state = json.loads(decoded)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput(field_name, NOT_OURS) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str | int)) for k, v in state.items()
    ):
        raise InvalidInput(field_name, NOT_OURS)
    return state


def limit_param(
    query: Mapping[str, str],
    *,
    default: int = DEFAULT_LIMIT,
    maximum: int = MAX_LIMIT,
    name: str = "limit",
) -> int:
    raw = (query.get(name) or "").strip()
    if not raw:
        return default
    # ASCII only and no longer than the maximum: str.isdigit() also accepts '²' and other
    # digits int() refuses, and int() refuses more than 4,300 digits; either would be a 500.
    if (not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(maximum))
            or not 1 <= int(raw) <= maximum):
        raise InvalidInput(name, f"must be a whole number from 1 to {maximum}")
    return int(raw)


def token_param(query: Mapping[str, str]) -> dict[str, Any] | None:
    return decode_token(query.get(CONTINUATION_PARAM))
