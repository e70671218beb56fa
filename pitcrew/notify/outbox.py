"""The durable outbox: every notification is written here before any delivery attempt, so a
channel that is down, answers 5xx or times out loses nothing; a timer retries with backoff.

One row per (channel, notification id). Inserting a row that exists is a no-op, so a retried
handler never sends twice; a lease taken with an ETag-conditional update keeps the immediate
attempt and the timer (or two timers) from delivering the same row at once.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from pitcrew.audit import AuditLog, AuditRecord, app_identity
from pitcrew.notify.channels import Channel, DeliveryFailed
from pitcrew.notify.model import Notification
from pitcrew.state import table_key, utcnow

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from pitcrew.policy import OutboxSettings

log = logging.getLogger(__name__)
AttemptResult = Literal["delivered", "failed", "busy", "already"]


@dataclass
class OutboxEntry:
    channel: str
    notification: Notification
    status: Literal["pending", "delivered"]
    attempts: int
    next_attempt_at: datetime
    etag: str
    last_error: str = ""
    lease_until: datetime | None = None
    created: bool = False
    """True when `enqueue` wrote this row just now (and so holds its lease)."""


@dataclass
class DrainReport:
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, int]:
        return {
            "delivered": len(self.delivered),
            "failed": len(self.failed),
            "busy": len(self.busy),
        }


class Outbox:
    def __init__(
        self, table: TableClient, settings: OutboxSettings, *, audit: AuditLog | None = None
    ) -> None:
        self._table = table
        self._settings = settings
        self._audit = audit

    def enqueue(self, channel: str, notification: Notification) -> OutboxEntry:
        """Record the notification for `channel`, leased to the caller for an immediate attempt;
        when it was recorded before, return that row untouched."""
        from azure.core.exceptions import ResourceExistsError

        now = utcnow()
        partition, row = table_key(channel), table_key(notification.id)
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": row,
            "Channel": channel,
            "Payload": json.dumps(notification.to_dict()),
            "Status": "pending",
            "Attempts": 0,
            "NextAttemptAt": now,
            "LeaseUntil": now + timedelta(seconds=self._settings.lease_seconds),
            "CreatedAt": now,
            "LastError": "",
        }
        try:
            meta = self._table.create_entity(entity)
        except ResourceExistsError:
            existing = self._table.get_entity(partition, row)
            return _entry(existing)
        entity["etag"] = meta["etag"]
        entry = _entry(entity)
        entry.created = True
        return entry

    def attempt(
        self, entry: OutboxEntry, channel: Channel | None, *, leased: bool = False
    ) -> AttemptResult:
        """Deliver one entry now. `leased` says the caller already holds its lease (it just
        enqueued it); otherwise the lease is taken first and a lost race returns "busy".

        Every exception a delivery raises is a failed attempt, recorded with its reason, backed
        off and escalated like any other: nothing a channel does ends the caller's run."""
        if entry.status == "delivered":
            return "already"
        if not leased and not self._take_lease(entry):
            return "busy"
        try:
            if channel is None:
                raise DeliveryFailed(f"channel {entry.channel!r} is not in the policy any more")
            channel.deliver(entry.notification)
        except DeliveryFailed as failure:
            self._record_failure(entry, failure.reason)
            return "failed"
        except Exception as exc:
            # A channel that does not wrap its errors: its type names it, its message may not be
            # safe to keep (it could quote a URL with a token).
            self._record_failure(entry, f"{type(exc).__name__} raised by channel {entry.channel!r}")
            return "failed"
        self._update(
            entry,
            {
                "Status": "delivered",
                "DeliveredAt": utcnow(),
                "Attempts": entry.attempts + 1,
                "LastError": "",
            },
        )
        entry.status = "delivered"
        return "delivered"

    def attempt_existing(self, entry: OutboxEntry, channel: Channel | None) -> AttemptResult:
        """An entry an earlier run recorded: delivered ("already"), leased by someone else
        ("busy": that attempt, or the retry timer once its lease lapses, owns it), or pending
        and free, so delivered now like any due entry."""
        if entry.status == "delivered":
            return "already"
        if entry.lease_until is not None and entry.lease_until > utcnow():
            return "busy"
        return self.attempt(entry, channel)

    def due(
        self, *, now: datetime | None = None, limit: int = 500, unreadable: list[str] | None = None
    ) -> Iterator[OutboxEntry]:
        """Pending entries whose next attempt is due and whose lease has lapsed. A row that
        cannot be read is logged, pushed back like a failed attempt, added to `unreadable`
        (by row key) and skipped."""
        now = now or utcnow()
        rows = self._table.query_entities(
            "Status eq 'pending' and NextAttemptAt le @now and LeaseUntil le @now",
            parameters={"now": now},
        )
        for count, row in enumerate(rows):
            if count >= limit:
                return
            try:
                entry = _entry(row)
            except Exception as exc:
                key = self._unreadable(row, exc)
                if unreadable is not None:
                    unreadable.append(key)
                continue
            yield entry

    def drain(self, channels: Mapping[str, Channel], *, now: datetime | None = None) -> DrainReport:
        """Retry every entry that is due; the timer calls this. One entry never holds up the
        others: whatever goes wrong with it is logged, and the next one is tried."""
        report = DrainReport()
        for entry in self.due(now=now, unreadable=report.failed):
            try:
                result = self.attempt(entry, channels.get(entry.channel))
            except Exception:
                # Storage trouble recording the attempt: the row stays pending and its lease
                # lapses, so a later run retries it.
                log.exception(
                    "outbox: could not record the attempt of notification %r to channel %s",
                    entry.notification.id,
                    entry.channel,
                )
                result = "failed"
            if result == "delivered":
                report.delivered.append(entry.notification.id)
            elif result == "failed":
                report.failed.append(entry.notification.id)
            elif result == "busy":
                report.busy.append(entry.notification.id)
        return report

    def pending(self) -> list[OutboxEntry]:
        return [_entry(r) for r in self._table.query_entities("Status eq 'pending'")]

    # ------------------------------------------------------------------ internals

    def _take_lease(self, entry: OutboxEntry) -> bool:
        from azure.core.exceptions import ResourceModifiedError

        until = utcnow() + timedelta(seconds=self._settings.lease_seconds)
        try:
            self._update(entry, {"LeaseUntil": until})
        except ResourceModifiedError:
            return False
        return True

    def _delay(self, attempts: int) -> float:
        delay = min(
            self._settings.max_delay_seconds,
            self._settings.base_delay_seconds * 2 ** (attempts - 1),
        )
        # Jitter spreads retries of many notifications so a recovering receiver isn't stampeded.
        return delay * random.uniform(0.8, 1.2)

    def _unreadable(self, row: Any, exc: Exception) -> str:
        """A row `_entry` cannot read (a payload an older or newer version wrote, a hand edit):
        logged as an error, its attempt counted and its next one backed off, so it neither
        blocks the rows after it nor floods the log every minute."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        partition, row_key = str(row.get("PartitionKey", "")), str(row.get("RowKey", ""))
        try:
            attempts = int(row.get("Attempts") or 0) + 1
        except (TypeError, ValueError):
            attempts = 1
        reason = f"unreadable outbox row: {type(exc).__name__}"
        log.error("outbox row %s/%s is unreadable (%s); skipped", partition, row_key, reason)
        now = utcnow()
        try:
            self._table.update_entity(
                {
                    "PartitionKey": partition,
                    "RowKey": row_key,
                    "Attempts": attempts,
                    "LastError": reason,
                    "NextAttemptAt": now + timedelta(seconds=self._delay(attempts)),
                    "LeaseUntil": now,
                },
                mode=UpdateMode.MERGE,
                etag=row.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except Exception:
            log.exception("outbox row %s/%s: could not record it as unreadable", partition, row_key)
        return unquote(row_key)

    def _record_failure(self, entry: OutboxEntry, reason: str) -> None:
        attempts = entry.attempts + 1
        delay = self._delay(attempts)
        now = utcnow()
        self._update(
            entry,
            {
                "Attempts": attempts,
                "LastError": reason[:300],
                "NextAttemptAt": now + timedelta(seconds=delay),
                "LeaseUntil": now,
            },
        )
        log.warning(
            "notification %r to channel %s failed (attempt %d): %s; next try in %.0fs",
            entry.notification.id,
            entry.channel,
            attempts,
            reason,
            delay,
        )
        if attempts == self._settings.escalate_after_attempts:
            log.error(
                "notification %r to channel %s has failed %d times and is still retried",
                entry.notification.id,
                entry.channel,
                attempts,
            )
            if self._audit is not None:
                self._audit.append(
                    AuditRecord(
                        actor=app_identity(),
                        action="notify.stuck",
                        target=f"channel/{entry.channel}",
                        outcome="failed",
                        correlation_id=entry.notification.correlation_id,
                        details={
                            "notification": entry.notification.id,
                            "attempts": attempts,
                            "lastError": reason[:300],
                        },
                    )
                )

    def _update(self, entry: OutboxEntry, changes: Mapping[str, Any]) -> None:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        meta = self._table.update_entity(
            {
                "PartitionKey": table_key(entry.channel),
                "RowKey": table_key(entry.notification.id),
                **changes,
            },
            mode=UpdateMode.MERGE,
            etag=entry.etag,
            match_condition=MatchConditions.IfNotModified,
        )
        entry.etag = meta["etag"]
        entry.attempts = int(changes.get("Attempts", entry.attempts))


def _entry(row: Any) -> OutboxEntry:
    etag = row["etag"] if "etag" in row else row.metadata["etag"]
    return OutboxEntry(
        channel=row["Channel"],
        notification=Notification.from_dict(json.loads(row["Payload"])),
        status=row["Status"],
        attempts=int(row["Attempts"]),
        next_attempt_at=row["NextAttemptAt"],
        etag=etag,
        last_error=row.get("LastError", ""),
        lease_until=row.get("LeaseUntil"),
    )
