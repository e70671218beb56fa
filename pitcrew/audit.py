"""The append-only audit trail: who asked for what, on which target, with what outcome.

Records are only ever appended (never updated or deleted by pitcrew) through the AuditLog port
(pitcrew.ports; pitcrew.azure.tables.audit keeps them in Table storage). A query covers at most
MAX_RANGE and is read a page at a time, resumed by a continuation token bound to that query.
Details must never contain a secret value: callers pass names, versions and ids only.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pitcrew.errors import InvalidInput
from pitcrew.http.paging import CONTINUATION_PARAM, NOT_OURS

Outcome = Literal["succeeded", "failed", "skipped", "planned", "queued"]

# The widest time range one query may cover: 31 day partitions, read with one range query.
MAX_RANGE = timedelta(days=31)
MAX_FILTER_CHARS = 512


def app_identity() -> str:
    """How automatic actions are attributed: the app's managed identity."""
    client_id = os.environ.get("AZURE_CLIENT_ID", "").strip()
    return f"app:pitcrew/{client_id}" if client_id else "app:pitcrew"


@dataclass(frozen=True)
class AuditRecord:
    actor: str
    action: str
    target: str
    outcome: Outcome
    correlation_id: str
    details: Mapping[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.record_id,
            "time": self.time.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "correlationId": self.correlation_id,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class AuditQuery:
    """Which records to read: since <= time < until (at most MAX_RANGE apart), optionally
    only one target, actor or action. Times are normalised to UTC."""

    since: datetime
    until: datetime
    target: str | None = None
    actor: str | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        since, until = self.since.astimezone(UTC), self.until.astimezone(UTC)
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)
        if since >= until:
            raise InvalidInput("since", "must be earlier than until")
        if until - since > MAX_RANGE:
            raise InvalidInput(
                "since",
                f"the range from since to until may be at most {MAX_RANGE.days} days "
                f"(asked for {(until - since).days}); read a longer period one range at a time",
            )
        for name in ("target", "actor", "action"):
            value = getattr(self, name)
            if value is not None and len(value) > MAX_FILTER_CHARS:
                raise InvalidInput(name, f"may be at most {MAX_FILTER_CHARS} characters")

    def fingerprint(self) -> str:
        """Identifies the query inside a continuation token, so a token only resumes the
        query that issued it."""
        canonical = json.dumps(
            [self.since.isoformat(), self.until.isoformat(), self.target, self.actor, self.action]
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


# Keys a continuation token carries beside the store's own resume position.
TOKEN_QUERY, TOKEN_SINCE, TOKEN_UNTIL = "q", "since", "until"


def window_of(continuation: Mapping[str, Any] | None) -> tuple[datetime | None, datetime | None]:
    """The since and until (in UTC) a continuation token was issued for (None without a
    token), so a caller may pass just the token for the next page; InvalidInput on
    `continuation` when they are not a range pitcrew could have issued."""
    if not continuation:
        return None, None
    try:
        since, until = (datetime.fromisoformat(str(continuation[key]))
                        for key in (TOKEN_SINCE, TOKEN_UNTIL))
        # pitcrew issues the range in UTC, within an AuditQuery's bounds; anything else is
        # forged, and a time at datetime's edge would overflow once moved to UTC.
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("no UTC offset")
        since, until = since.astimezone(UTC), until.astimezone(UTC)
    except (KeyError, ValueError, OverflowError):
        raise InvalidInput(CONTINUATION_PARAM, NOT_OURS) from None
    if not timedelta(0) < until - since <= MAX_RANGE:
        raise InvalidInput(CONTINUATION_PARAM, NOT_OURS)
    return since, until


