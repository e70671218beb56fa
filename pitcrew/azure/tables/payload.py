"""JSON text of any size in a Table entity: inline when it fits one property, else compressed
and split over binary properties.

A Table property holds at most 64 KiB (32K UTF-16 characters) and an entity 1 MiB. A grouped
notification, a long alert description or a run's data can exceed one property; written
as-is, the insert fails with PropertyValueTooLarge on every retry and the row (a
notification!) is never stored. Here it is stored compressed in chunks instead, and a value
too large even for that is refused with a message naming it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

INLINE_LIMIT_BYTES = 64_000  # UTF-16, as Table storage counts a string property
CHUNK_BYTES = 60_000
MAX_CHUNKS = 15  # 900 KB of compressed data, within the entity's 1 MiB


def pack(name: str, text: str) -> dict[str, Any]:
    """The properties that hold `text` under `name` (always sets `<name>Chunks`, so a merge
    that shrinks a value never leaves old chunks in force)."""
    if len(text.encode("utf-16-le", "surrogatepass")) <= INLINE_LIMIT_BYTES:
        return {name: text, f"{name}Chunks": 0}
    data = zlib.compress(text.encode("utf-8", "surrogatepass"), 6)
    chunks = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    if len(chunks) > MAX_CHUNKS:
        raise ValueError(
            f"{name} is {len(text)} characters ({len(data)} bytes compressed); a table row "
            f"holds at most {MAX_CHUNKS * CHUNK_BYTES} bytes"
        )
    packed: dict[str, Any] = {name: "", f"{name}Chunks": len(chunks)}
    packed.update({f"{name}Z{i}": chunk for i, chunk in enumerate(chunks)})
    return packed


def unpack(name: str, row: Mapping[str, Any], default: str = "") -> str:
    """The text `pack` stored under `name` (rows written before chunking read as they were)."""
    count = int(row.get(f"{name}Chunks") or 0)
    if not count:
        value = row.get(name)
        return default if value in (None, "") else str(value)
    data = b"".join(bytes(row[f"{name}Z{i}"]) for i in range(count))
    return zlib.decompress(data).decode("utf-8", "surrogatepass")
