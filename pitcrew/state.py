"""Idempotency claims and run records: what the StateStore port (pitcrew.ports) trades in.

A claim is won by exactly one of N concurrent claimants (pitcrew.azure.tables.state inserts a
row only if absent). The winner holds a lease while it works and marks the claim done when the
effect is complete; a later duplicate sees `done` and stops. A claimant that finds an expired
lease (the winner crashed) takes the claim over with an ETag-conditional update, so again only
one proceeds. A run record is a persisted state machine saved only if nobody advanced it since
it was read (`StaleRun` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pitcrew.errors import RetryLater

ClaimStatus = Literal["claimed", "done"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Claim:
    """A won claim: the holder may perform the side effect, then must `complete` it."""

    scope: str
    key: str
    etag: str
    attempt: int
    taken_over: bool = False


@dataclass
class RunRecord:
    """A persisted state machine run (rotations, replay jobs): the step it reached and its data."""

    kind: str
    run_id: str
    step: str
    status: str
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    etag: str | None = None


class StaleRun(RetryLater):
    """Another instance advanced the run first: reload it and retry."""
