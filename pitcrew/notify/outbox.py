"""The durable outbox: every notification is written here before any delivery attempt, so a
channel that is down, answers 5xx or times out loses nothing; a timer retries with backoff.

One row per (channel, notification id) in an OutboxStore (pitcrew.ports;
pitcrew.azure.tables.outbox keeps it in Table storage). Inserting a row that exists is a no-op,
so a retried handler never sends twice; a lease taken with an ETag-conditional update keeps the
immediate attempt and the timer (or two timers) from delivering the same row at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.errors import Conflict
from pitcrew.http.paging import Page
from pitcrew.notify.channels import DeliveryFailed
from pitcrew.notify.model import Notification, OutboxEntry, UnreadableRow
from pitcrew.policy import OutboxSettings
from pitcrew.ports import AuditLog, Channel, OutboxStore
from pitcrew.state import utcnow

log = logging.getLogger(__name__)
AttemptResult = Literal["delivered", "failed", "busy", "already"]


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
        self, store: OutboxStore, settings: OutboxSettings, *, audit: AuditLog | None = None
    ) -> None:
        self._store = store
        self._settings = settings
        self._audit = audit

    def enqueue(self, channel: str, notification: Notification) -> OutboxEntry:
        """Record the notification for `channel`, leased to the caller for an immediate attempt;
        when it was recorded before, return that row untouched."""
        now = utcnow()
        return self._store.insert(
            channel, notification, now=now,
            lease_until=now + timedelta(seconds=self._settings.lease_seconds),
        )

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
            self._record_failure(entry, failure.reason, at_least=failure.retry_after_seconds)
            return "failed"
        except Exception as exc:
            # A channel that does not wrap its errors: its type names it, its message may not be
            # safe to keep (it could quote a URL with a token).
            self._record_failure(entry, f"{type(exc).__name__} raised by channel {entry.channel!r}")
            return "failed"
        self._store.update(entry, status="delivered", delivered_at=utcnow(),
                           attempts=entry.attempts + 1, last_error="")
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
        for item in self._store.due(now or utcnow(), limit=limit):
            if isinstance(item, UnreadableRow):
                self._unreadable(item)
                if unreadable is not None:
                    unreadable.append(item.key)
                continue
            yield item

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
        return self._store.pending()

    def get(self, channel: str, notification_id: str) -> OutboxEntry | None:
        return self._store.get(channel, notification_id)

    def page(self, *, limit: int, status: str | None = None, channel: str | None = None,
             continuation: Mapping[str, Any] | None = None) -> Page[OutboxEntry]:
        return self._store.page(limit=limit, status=status, channel=channel,
                                continuation=continuation)

    def retry_now(self, entry: OutboxEntry, channel: Channel | None) -> AttemptResult:
        """An operator's retry: make the row due now and attempt it at once (unless another
        attempt holds its lease: "busy")."""
        if entry.status == "delivered":
            return "already"
        if entry.lease_until is not None and entry.lease_until > utcnow():
            return "busy"
        if not self._take_lease(entry):
            return "busy"
        return self.attempt(entry, channel, leased=True)

    # ------------------------------------------------------------------ internals

    def _take_lease(self, entry: OutboxEntry) -> bool:
        until = utcnow() + timedelta(seconds=self._settings.lease_seconds)
        try:
            self._store.update(entry, lease_until=until)
        except Conflict:
            return False
        return True

    def _delay(self, attempts: int) -> float:
        delay = min(
            self._settings.max_delay_seconds,
            self._settings.base_delay_seconds * 2 ** (attempts - 1),
        )
        # Jitter spreads retries of many notifications so a recovering receiver isn't stampeded.
        return delay * random.uniform(0.8, 1.2)

    def _unreadable(self, row: UnreadableRow) -> None:
        """A row the store cannot read back: logged as an error, its attempt counted and its
        next one backed off, so it neither blocks the rows after it nor floods the log every
        minute."""
        attempts = row.attempts + 1
        reason = f"unreadable outbox row: {type(row.error).__name__}"
        log.error("outbox row %s/%s is unreadable (%s); skipped", row.channel_key, row.row_key,
                  reason)
        now = utcnow()
        try:
            self._store.push_back(row, attempts=attempts, reason=reason, now=now,
                                  next_attempt_at=now + timedelta(seconds=self._delay(attempts)))
        except Exception:
            log.exception("outbox row %s/%s: could not record it as unreadable", row.channel_key,
                          row.row_key)

    def _record_failure(self, entry: OutboxEntry, reason: str, *,
                        at_least: float | None = None) -> None:
        attempts = entry.attempts + 1
        # A receiver's Retry-After (or its rate cap) is a floor under the backoff.
        delay = max(self._delay(attempts), at_least or 0.0)
        now = utcnow()
        self._store.update(entry, attempts=attempts, last_error=reason[:300],
                           next_attempt_at=now + timedelta(seconds=delay), lease_until=now)
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
