"""Keys and property values Table storage accepts, for any string."""

from __future__ import annotations

from hashlib import sha256
from typing import Any
from urllib.parse import quote


def table_key(value: str) -> str:
    """A PartitionKey/RowKey for any string: Table keys forbid / \\ # ? and control characters.

    Every character outside a safe ASCII set is percent-encoded (UTF-8; an unpaired surrogate,
    which JSON can carry, is encoded as its code unit rather than failing), so any Python
    string maps to a valid key and distinct strings to distinct keys."""
    encoded = quote(value, safe="-_.~:@!$&'()*+,;=", errors="surrogatepass")
    if len(encoded) > 400:
        # Long keys keep a readable head and a digest that keeps them distinct.
        digest = sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{encoded[:300]}~{digest}"
    return encoded


def printable(value: str) -> str:
    """A string a Table property can hold: unpaired surrogates escaped, nothing dropped."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def row_etag(row: Any) -> str | None:
    """The entity's ETag; None for a row read through paging (a plain dict, listed only)."""
    meta = getattr(row, "metadata", None) or {}
    etag: str | None = meta.get("etag")
    return etag
