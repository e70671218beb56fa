"""Ingest: copy each failed message into the store, then settle it at its source.

Store first, settle after: a crash between the two leaves the message at its source, and the
next ingest finds it already stored (same id) and only settles it. Groups are counted and a new
group, or one crossing a threshold, sends exactly one notification (its id is deterministic, so
the outbox sends it once per channel however many instances race).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.deadletter.model import (
    Arrival,
    Captured,
    FailedMessage,
    Group,
    NotFound,
    utcnow,
)
from pitcrew.deadletter.notices import group_notification
from pitcrew.deadletter.policy import ServiceBusSource
from pitcrew.deadletter.ports import DeadletterServices, FailedMessageStore, SourceConfig
from pitcrew.errors import InvalidInput

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    source: str
    received: int = 0
    stored: int = 0
    already_stored: int = 0
    unsettled: int = 0
    refused: int = 0  # the store would not take them: left at the source, not settled
    refusals: list[dict[str, str]] = field(default_factory=list)  # the first few, with why
    groups: set[str] = field(default_factory=set)
    notified: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source, "received": self.received, "stored": self.stored,
            "alreadyStored": self.already_stored, "unsettled": self.unsettled,
            "groups": sorted(self.groups), "notified": self.notified}
        if self.refused:
            out["refused"] = self.refused
            out["refusedMessages"] = self.refusals
        return out

    def left_at_source(self) -> str | None:
        """Why this ingest is not complete (some stored messages could not be settled at the
        source, or some could not be stored at all), or None when every message received was
        also stored and settled."""
        problems: list[str] = []
        if self.refused:
            problems.append(
                f"{self.refused} of {self.received} message(s) could not be stored and stay at "
                "the source (" + "; ".join(f"{r['id']}: {r['reason']}" for r in self.refusals)
                + ")")
        if self.unsettled:
            problems.append(
                f"{self.unsettled} of {self.received} message(s) could not be settled at the "
                "source: they are stored, stay at the source, and the next ingest recognises "
                "and settles them")
        return "; ".join(problems) or None


def ingest_source(dl: DeadletterServices, config: SourceConfig,
                  *, max_messages: int | None = None,
                  on_batch: Callable[[IngestReport], None] | None = None) -> IngestReport:
    """Ingest up to `max_messages` (policy `scan_max_messages`); `on_batch` sees the report
    after each stored batch (a scan job's progress).

    Where the source's settles are independent calls (a poison queue's deletes), a batch's
    settles run in the background while the next batch is received, stored and counted: at
    most one batch is being settled, and every settle starts only after its message is
    stored."""
    report = IngestReport(config.name)
    limit = max_messages or dl.policy.scan_max_messages
    recent: deque[set[str]] = deque(maxlen=_RECENT_BATCHES)  # bounded: flat memory
    source = dl.source(config)
    parallel = bool(getattr(source, "concurrent_settle", False))
    settling: Future[None] | None = None
    known: dict[str, Group] = {}  # each group as this ingest last read or wrote it
    counted = _Counted()
    try:
        for batch in source.receive(limit):
            ids = {c.message.id for c in batch}
            if ids <= set().union(*recent):
                break  # redelivered within this run (a lost lock): the next scan settles them
            recent.append(ids)
            arrivals, stored = _store_batch(dl, batch, report, known, counted)
            if parallel:
                if settling is not None:
                    settling.result()  # one batch in flight
                settling = _SETTLE_POOL.submit(_settle_all, stored, report, True)
            else:
                _settle_all(stored, report, False)
            for arrival in arrivals:
                report.notified += notify_due(dl, arrival.group, arrival)
            if on_batch is not None:
                on_batch(report)
    finally:
        if settling is not None:
            settling.result()
    if report.received:
        details = report.to_dict()
        # Stored but not settled is not done: the audit says so, with the count and why.
        problem = report.left_at_source()
        if problem is None:
            log.info("dead-letter ingest %s: %s", config.name, details)
        else:
            details["reason"] = problem
            log.warning("dead-letter ingest %s incomplete: %s", config.name, details)
        dl.audit.append(AuditRecord(
            actor=app_identity(), action="dlq.ingest", target=config.entity,
            outcome="failed" if problem else "succeeded", correlation_id=config.name,
            details=details))
    return report


_RECENT_BATCHES = 16  # ids of the last batches, to notice a source handing them back


@dataclass
class _Counted:
    """What one ingest run knows about counting: each group's last seen as it was before this
    run counted anything in it (None: the group did not exist), and the ids this run stored."""

    before: dict[str, Any] = field(default_factory=dict)
    stored_here: set[str] = field(default_factory=set)


def _store_batch(dl: DeadletterServices, batch: list[Captured], report: IngestReport,
                 known: dict[str, Group], counted: _Counted
                 ) -> tuple[list[Arrival], list[Captured]]:
    """Store, then count; returns the arrivals and the messages now stored (the ones to
    settle). Counting comes before the settle: a crash after the store write leaves the
    messages at the source, and the next ingest (which finds them stored) counts those the
    crash left uncounted, and only those.

    A message the store refuses (properties too large) stays at its source, is logged and
    reported; the rest of the batch is stored and settled all the same."""
    store = dl.store
    report.received += len(batch)
    created, refused = _put(store, batch)  # raises (anything but a refusal): nothing settled
    for captured in batch:
        if captured.message.id in refused:
            _refuse(report, captured, refused[captured.message.id])
    stored = [c for c in batch if c.message.id not in refused]
    report.stored += len(created)
    report.already_stored += len(stored) - len(created)
    by_group: dict[str, list[Captured]] = {}
    for captured in stored:
        by_group.setdefault(captured.message.group, []).append(captured)
    thresholds = dl.policy.thresholds
    arrivals: list[Arrival] = []
    for group_id, members in by_group.items():
        report.groups.add(group_id)
        if group_id not in counted.before:
            group = _read_group(dl, group_id)
            counted.before[group_id] = group.last_seen if group is not None else None
            if group is not None:
                known[group_id] = group
        new = [c.message.id for c in members if c.message.id in created]
        uncounted = _uncounted(dl, [c for c in members if c.message.id not in created],
                               counted)
        counted.stored_here.update(new)
        counted.stored_here.update(uncounted)
        if not new and not uncounted:
            continue
        if uncounted:
            log.info("dead-letter ingest: %d message(s) of group %s were stored by an earlier "
                     "ingest that stopped before counting them; counted now", len(uncounted),
                     group_id)
        arrival = store.record_arrivals(members[0].message, len(new) + len(uncounted),
                                        utcnow(), thresholds, known=known.get(group_id))
        known[group_id] = arrival.group  # as written: the next batch need not read it again
        arrivals.append(arrival)
    return arrivals, stored


def _put(store: FailedMessageStore, batch: list[Captured]) -> tuple[set[str], dict[str, str]]:
    """Store the batch; a message the store refuses (InvalidInput: it can never be stored as
    it is) is set apart, with the reason, and the others are stored all the same. The store
    checks a whole call before writing any of it, so halving isolates the refused ones in a
    few calls."""
    try:
        return store.put_many([(c.message, c.body) for c in batch]), {}
    except InvalidInput as exc:
        if len(batch) == 1:
            return set(), {batch[0].message.id: str(exc)[:500]}
    half = len(batch) // 2
    created, refused = _put(store, batch[:half])
    more, more_refused = _put(store, batch[half:])
    return created | more, {**refused, **more_refused}


def _refuse(report: IngestReport, captured: Captured, reason: str) -> None:
    report.refused += 1
    message = captured.message
    if len(report.refusals) < REFUSALS_LISTED:
        report.refusals.append({"id": message.id, "sourceKey": message.source_key[:300],
                                "reason": reason})
    log.warning("dead-letter ingest %s: failed message %s (%s) cannot be stored and stays at "
                "its source: %s", message.source, message.id, message.source_key[:300], reason)


REFUSALS_LISTED = 20


def _uncounted(dl: DeadletterServices, members: list[Captured], counted: _Counted) -> list[str]:
    """Of messages found already stored, those no ingest counted: stored by an earlier ingest
    that stopped between the store write and the count. A count moves the group's last seen
    past the ingest time of every message it counts, so a message stored after the group was
    last seen (as it was when this run first looked) was never counted. Those this run stored
    itself were counted by it."""
    members = [c for c in members if c.message.id not in counted.stored_here]
    if not members:
        return []
    before = counted.before.get(members[0].message.group)
    if before is None:  # no group when this run began: nothing of it was ever counted
        return [c.message.id for c in members]
    rows = list(_READ_POOL.map(lambda c: _stored(dl, c.message.id), members))
    return [row.id for row in rows if row is not None and row.ingested_at > before]


def _stored(dl: DeadletterServices, message_id: str) -> FailedMessage | None:
    try:
        return dl.store.get(message_id)
    except NotFound:
        return None


_READ_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="dlq-ingest-read")


def _settle_all(batch: list[Captured], report: IngestReport, parallel: bool) -> None:
    """Settle a stored batch at its source; what cannot be settled stays there and the next
    ingest recognises it."""
    settled = (list(_DELETE_POOL.map(_settle, batch)) if parallel
               else [_settle(c) for c in batch])
    for captured, exc in zip(batch, settled, strict=True):
        if exc is not None:
            report.unsettled += 1
            log.warning("could not settle failed message %s at %s (%s); it stays there and the "
                        "next ingest recognises it", captured.message.id,
                        captured.message.entity, type(exc).__name__)


_SETTLE_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dlq-settle-batch")
_DELETE_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="dlq-settle")


def _settle(captured: Captured) -> Exception | None:
    try:
        captured.settle()
    except Exception as exc:
        return exc
    return None


def _read_group(dl: DeadletterServices, group_id: str) -> Group | None:
    try:
        return dl.store.group(group_id)
    except NotFound:
        return None


def notify_due(dl: DeadletterServices, group: Group, arrival: Arrival | None = None) -> list[str]:
    """Send the group's pending notification (new group or highest threshold crossed) once."""
    if group.notice_level <= group.notice_sent:
        return []
    notification = group_notification(group, group.notice_level, dl.policy)
    dispatch = dl.router.send(notification)
    dl.store.mark_notice_sent(group, group.notice_level)
    dl.audit.append(AuditRecord(
        actor=app_identity(), action="notify.deadletter", target=group.entity,
        outcome=dispatch.outcome,  # type: ignore[arg-type]
        correlation_id=group.id,
        details={"group": group.id, "count": group.count, "level": group.notice_level,
                 "notification": notification.id, **dispatch.to_dict()}))
    return [notification.id]


def scan(dl: DeadletterServices, names: Iterable[str] | None = None) -> list[IngestReport]:
    """The timer's scan (and `POST /api/dlq/scan`): every configured source, or the named ones.
    A failing source does not stop the others; the first error is raised after all ran."""
    wanted = set(names) if names else None
    reports: list[IngestReport] = []
    first_error: Exception | None = None
    for config in dl.policy.sources:
        if wanted is not None and config.name not in wanted:
            continue
        try:
            reports.append(ingest_source(dl, config))
        except Exception as exc:
            log.error("dead-letter scan of %s failed: %s", config.name, type(exc).__name__)
            first_error = first_error or exc
    notify_pending(dl)
    if first_error is not None:
        raise first_error
    return reports


def notify_pending(dl: DeadletterServices) -> None:
    """Send the notifications an earlier crash left unsent."""
    for group in dl.store.groups():
        if group.notice_level > group.notice_sent:
            notify_due(dl, group)


def sources_for_entity(dl: DeadletterServices, namespace: str, entity: str) -> list[SourceConfig]:
    """Configured Service Bus sources for a namespace and a queue, topic or subscription path."""
    found: list[SourceConfig] = []
    for config in dl.policy.sources:
        if not isinstance(config, ServiceBusSource):
            continue
        if config.short_namespace.lower() != namespace.lower():
            continue
        names = {config.queue, config.topic,
                 f"{config.topic}/subscriptions/{config.subscription}"} - {None}
        if entity in names:
            found.append(config)
    return found
