"""Grouping: failures with the same cause at the same source entity are one problem.

The cause is the dead-letter reason and description with everything that varies per message
masked: GUIDs, timestamps, long hex ids, numbers, quoted values. Two messages that failed for
the same reason at the same entity therefore share a group, whatever order id they carried.
"""

from __future__ import annotations

import re
from hashlib import sha256

from pitcrew.errors import InvalidInput

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"),
     "<time>"),
    (re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}(?: \d{1,2}:\d{2}(?::\d{2})?(?: ?[AP]M)?)?", re.I),
     "<time>"),
    (re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.I),
     "<guid>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I), "<id>"),
    (re.compile(r"\b[A-Za-z]+[-_:]?\d[\w-]*\b"), "<id>"),
    (re.compile(r"(?<![\w<])[-+]?\d+(?:[.,]\d+)*"), "<n>"),
    (re.compile(r"'[^']{1,200}'|\"[^\"]{1,200}\""), "<value>"),
    (re.compile(r"\s+"), " "),
)
MAX_CAUSE = 400


def normalise_cause(reason: str | None, description: str | None) -> str:
    """`reason: description` with per-message values masked; stable across messages."""
    text = f"{(reason or '').strip() or 'unknown'}: {(description or '').strip()}".strip(": ")
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text.strip()[:MAX_CAUSE]


def group_id(entity: str, cause: str) -> str:
    """12 hex characters: short enough to type, enough to keep groups apart."""
    return sha256(f"{entity}\n{cause}".encode()).hexdigest()[:12]


def message_id(group: str, source_key: str) -> str:
    """A failed message's id: its group, then a digest of its identity at the source. The same
    source message always gets the same id, so a second ingest is recognised."""
    return f"{group}-{sha256(source_key.encode()).hexdigest()[:20]}"


def group_of(message_id: str) -> str:
    group, sep, rest = message_id.partition("-")
    if not sep or len(group) != 12 or not rest:
        raise InvalidInput("message", f"{message_id[:80]!r} is not a failed-message id")
    return group
