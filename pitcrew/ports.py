"""The ports of pitcrew's core: small Protocols the engine depends on. `pitcrew/azure/`
implements them over the Azure SDKs (Tables for all of these), `pitcrew.bootstrap` wires the
implementations; areas keep their own ports beside them (pitcrew/rotation/ports.py,
pitcrew/deadletter/ports.py).

    StateStore        idempotency claims and persisted runs (ETag concurrency)
    AuditLog          the append-only audit trail
    RejectedEventLog  poison events the Event Grid triggers refused
    OutboxStore       the rows of the durable notification outbox
    Channel           one place a notification is delivered to
    Notifier          the alerting pipeline: routes, groups and delivers through the outbox
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from pitcrew.audit import AuditQuery, AuditRecord
from pitcrew.http.paging import Page
from pitcrew.intake.rejected import RejectedEvent
from pitcrew.notify.model import Dispatch, Notification, OutboxEntry, UnreadableRow
from pitcrew.state import Claim, ClaimStatus, RunRecord


class StateStore(Protocol):
    """Idempotency claims and run records."""

    def claim(
        self,
        scope: str,
        key: str,
        *,
        lease_seconds: float = ...,
        label: Mapping[str, str] | None = None,
    ) -> Claim | None:
        """Win the right to act on `key` once; None when it is already done. RetryLater while
        another instance holds a live lease."""
        ...

    def claim_new(
        self, scope: str, items: Sequence[tuple[str, Mapping[str, str] | None]], *,
        lease_seconds: float = ...,
    ) -> dict[str, Claim]:
        """Claim many keys at once (a delivery's events): the claims won by inserting their
        rows; a key left out exists already and goes through `claim`."""
        ...

    def complete(self, claim: Claim, *, outcome: str) -> None: ...

    def complete_many(self, done: Sequence[tuple[Claim, str]]) -> None:
        """`complete` each (claim, outcome), batched."""
        ...

    def release(self, claim: Claim, *, reason: str) -> None: ...

    def claim_status(self, scope: str, key: str) -> ClaimStatus | None: ...

    def create_run(self, run: RunRecord) -> RunRecord | None:
        """Insert a new run; None when a run with that id exists."""
        ...

    def get_run(self, kind: str, run_id: str) -> RunRecord | None: ...

    def save_run(self, run: RunRecord) -> RunRecord:
        """Persist the next step, only if nobody advanced the run since it was read
        (StaleRun otherwise)."""
        ...

    def list_runs(self, kind: str, *, status: str | None = None) -> Iterator[RunRecord]: ...

    def runs_page(
        self, kind: str, *, limit: int, status: str | None = None,
        run_ids: tuple[str, str] | None = None, continuation: Mapping[str, Any] | None = None,
    ) -> Page[RunRecord]: ...

    def runs_between(
        self, kind: str, first: str, last: str, *, limit: int, status: str | None = None,
        after: str | None = None,
    ) -> Page[RunRecord]: ...


class AuditLog(Protocol):
    def append(self, record: AuditRecord) -> None: ...

    def deferred(self) -> AbstractContextManager[None]:
        """Records appended inside the block (and the contexts copied from it) are written
        together when it ends, whether it ends well or not."""
        ...

    def page(
        self, query: AuditQuery, *, limit: int, continuation: Mapping[str, Any] | None = None
    ) -> Page[AuditRecord]: ...

    def query(
        self, *, since: datetime, until: datetime, target: str | None = None, limit: int = 1000
    ) -> Iterator[AuditRecord]: ...


class RejectedEventLog(Protocol):
    def add(self, rejected: RejectedEvent) -> None: ...

    def page(
        self, *, limit: int, continuation: Mapping[str, Any] | None = None,
        since: datetime | None = None, until: datetime | None = None,
        source: str | None = None, type: str | None = None, function: str | None = None,
    ) -> Page[RejectedEvent]:
        """Newest first; each filter given is matched exactly (times: received within)."""
        ...


class OutboxStore(Protocol):
    """One row per (channel, notification id). Every update is conditional on the entry's
    ETag and raises pitcrew.errors.Conflict when another writer changed the row."""

    def insert(self, channel: str, notification: Notification, *, now: datetime,
               lease_until: datetime) -> OutboxEntry:
        """Record a pending row leased until `lease_until` (`created` set); when the row exists,
        return it untouched."""
        ...

    def update(self, entry: OutboxEntry, *, status: str | None = None,
               attempts: int | None = None, last_error: str | None = None,
               next_attempt_at: datetime | None = None, lease_until: datetime | None = None,
               delivered_at: datetime | None = None) -> None: ...

    def due(self, now: datetime, *, limit: int) -> Iterator[OutboxEntry | UnreadableRow]:
        """Pending rows whose next attempt is due and whose lease has lapsed."""
        ...

    def push_back(self, row: UnreadableRow, *, attempts: int, reason: str,
                  next_attempt_at: datetime, now: datetime) -> None: ...

    def pending(self) -> list[OutboxEntry]: ...

    def get(self, channel: str, notification_id: str) -> OutboxEntry | None: ...

    def page(self, *, limit: int, status: str | None = None, channel: str | None = None,
             continuation: Mapping[str, Any] | None = None) -> Page[OutboxEntry]: ...


class Channel(Protocol):
    name: str

    def deliver(self, notification: Notification) -> None:
        """Deliver or raise (DeliveryFailed, with a reason that holds no URL or header)."""
        ...


class Notifier(Protocol):
    """The alerting pipeline (pitcrew.alerting.dispatch): routes, groups and delivers."""

    def send(self, notification: Notification) -> Dispatch: ...

    def send_many(self, notifications: Sequence[Notification], *,
                  concurrency: int = 1) -> list[Dispatch]:
        """Each as `send` would, one Dispatch each in order; those that share a group join it
        together (one read, one transaction per 100 alerts, one flush)."""
        ...

    def resolve(self, dedup_key: str, *, summary: str) -> Dispatch:
        """Resolve the alert with this dedup key wherever it fires (a dead-letter group
        replayed, archived or purged): its receivers are told, once."""
        ...
