"""What a stored body says: decoded for people (views, previews, text search), never changed.

The store keeps every body byte for byte as its source held it (a replay sends exactly that
back). A storage queue message is the text the queue trigger read; with the host's default
`messageEncoding: base64` that text is base64, so a strictly valid base64 text is decoded here,
as the trigger decodes it. Everything else is shown as stored. Bodies are customer data: these
helpers never log.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pitcrew.events import json_or_none

PREVIEW_CHARS = 120
HEX_PREVIEW_BYTES = 256
_BASE64 = re.compile(rb"^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$|"
                     rb"^(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def decode(stored: bytes, source_kind: str) -> tuple[bytes, str]:
    """(the body as the consumer saw it, the encoding removed: "base64" or "none")."""
    if source_kind == "storage-queue" and _BASE64.match(stored.strip()):
        try:
            data = base64.b64decode(stored.strip(), validate=True)
        except (binascii.Error, ValueError):
            return stored, "none"
        # A short word such as "test" is valid base64 too: binary out of it is not believed.
        if _text(data) is not None or len(stored.strip()) >= 16:
            return data, "base64"
    return stored, "none"


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # Text with control characters other than whitespace is binary for display purposes.
    if any(ord(c) < 0x20 and c not in "\t\r\n" for c in text):
        return None
    return text


def _json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    return json_or_none(stripped)


def view(stored: bytes, source_kind: str) -> dict[str, Any]:
    """The body for `GET /api/dlq/messages/{id}?body=true`: decoded; pretty-printable JSON
    when it is JSON, text when it is text, a hex preview (and base64) when binary."""
    data, encoding = decode(stored, source_kind)
    out: dict[str, Any] = {"size": len(stored), "encoding": encoding, "decodedSize": len(data)}
    text = _text(data)
    if text is None:
        out["format"] = "binary"
        out["hex"] = hex_preview(data)
        out["base64"] = base64.b64encode(data).decode()
        return out
    parsed = _json(text)
    if parsed is not None:
        out["format"] = "json"
        out["json"] = parsed
    else:
        out["format"] = "text"
    out["text"] = text
    return out


def hex_preview(data: bytes, limit: int = HEX_PREVIEW_BYTES) -> str:
    head = data[:limit].hex(" ")
    return head + (f" … ({len(data) - limit} more bytes)" if len(data) > limit else "")


def escape(text: str) -> str:
    """Control and bidirectional-override characters as visible escapes (\\n, \\x1b, \\u202e)."""
    def one(match: re.Match[str]) -> str:
        c = match.group(0)
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (
            f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
    return _CONTROL.sub(one, text)


def preview(stored: bytes, source_kind: str, limit: int = PREVIEW_CHARS) -> str:
    """At most `limit` characters of the decoded body on one line, control characters
    escaped; binary bodies as a short hex preview."""
    data, _ = decode(stored, source_kind)
    head = data[: limit * 4]
    text = None
    for cut in range(4 if len(head) < len(data) else 1):  # a character cut at the end
        try:
            text = head[: len(head) - cut].decode("utf-8")  # control characters escaped below
        except UnicodeDecodeError:
            continue
        break
    if text is None:
        return ("hex:" + data[: limit // 2].hex())[:limit]
    flat = escape(" ".join(text.split()) if text.strip().startswith(("{", "[")) else text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def searchable(stored: bytes, source_kind: str) -> str:
    """The decoded body as text for a case-insensitive search (invalid UTF-8 replaced)."""
    data, _ = decode(stored, source_kind)
    return data.decode("utf-8", "replace").casefold()


