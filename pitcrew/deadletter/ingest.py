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
from pitcrew.deadletter.model import Arrival, Captured, Group, NotFound, utcnow
from pitcrew.deadletter.notices import group_notification
from pitcrew.deadletter.policy import ServiceBusSource
from pitcrew.deadletter.ports import DeadletterServices, SourceConfig

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    source: str
    received: int = 0
    stored: int = 0
    already_stored: int = 0
    unsettled: int = 0
    groups: set[str] = field(default_factory=set)
    notified: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "received": self.received, "stored": self.stored,
                "alreadyStored": self.already_stored, "unsettled": self.unsettled,
                "groups": sorted(self.groups), "notified": self.notified}

    def left_at_source(self) -> str | None:
        """Why this ingest is not complete (some stored messages could not be settled at the
        source), or None when every message received was also settled."""
        if not self.unsettled:
            return None
        return (f"{self.unsettled} of {self.received} message(s) could not be settled at the "
                "source: they are stored, stay at the source, and the next ingest recognises "
                "and settles them")


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
    known: dict[str, Group] = {}  # each group as this ingest last wrote it
    try:
        for batch in source.receive(limit):
            ids = {c.message.id for c in batch}
            if ids <= set().union(*recent):
                break  # redelivered within this run (a lost lock): the next scan settles them
            recent.append(ids)
            arrivals = _store_batch(dl, batch, report, known)
            if parallel:
                if settling is not None:
                    settling.result()  # one batch in flight
                settling = _SETTLE_POOL.submit(_settle_all, batch, report, True)
            else:
                _settle_all(batch, report, False)
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


def _store_batch(dl: DeadletterServices, batch: list[Captured], report: IngestReport,
                 known: dict[str, Group]) -> list[Arrival]:
    """Store, then count. Counting comes before the settle: a crash after the store write
    leaves the messages at the source, and the next ingest (which finds them stored) must not
    have to count them."""
    store = dl.store
    report.received += len(batch)
    created = store.put_many([(c.message, c.body) for c in batch])  # raises: nothing settled
    report.stored += len(created)
    report.already_stored += len(batch) - len(created)
    by_group: dict[str, list[Captured]] = {}
    for captured in batch:
        by_group.setdefault(captured.message.group, []).append(captured)
    thresholds = dl.policy.thresholds
    arrivals: list[Arrival] = []
    for group_id, members in by_group.items():
        report.groups.add(group_id)
        new = sum(1 for c in members if c.message.id in created)
        if new == 0 and (group_id in known or _group_exists(dl, group_id)):
            continue
        # new == 0 with no group: an earlier ingest stored these and crashed before counting.
        arrival = store.record_arrivals(members[0].message, new or len(members), utcnow(),
                                        thresholds, known=known.get(group_id))
        known[group_id] = arrival.group  # as written: the next batch need not read it again
        arrivals.append(arrival)
    return arrivals


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


def _group_exists(dl: DeadletterServices, group_id: str) -> bool:
    try:
        dl.store.group(group_id)
    except NotFound:
        return False
    return True


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
