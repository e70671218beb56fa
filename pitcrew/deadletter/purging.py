"""Purge now (`POST /api/dlq/purge`, `pitcrew dlq purge`): delete a group's failed messages, or
every message ingested before a time, at once instead of archiving them and waiting out
`retention_days`. Operator only, dry-run first, audited with who asked.

What goes: the stored body, the row, and for Service Bus sources the broker's copy when it is
still in the dead-letter queue (stored but never settled: a lost lock). Broker copies go first,
so an ingest racing the purge cannot bring a purged message back. A message a replay job holds
(`replaying`) is skipped. One request purges at most MAX_PER_REQUEST messages and says
whether more match (`more`); the CLI repeats until none are left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pitcrew.audit import AuditRecord
from pitcrew.deadletter.model import FailedMessage
from pitcrew.deadletter.notices import resolve_group
from pitcrew.deadletter.policy import ServiceBusSource
from pitcrew.deadletter.ports import DeadletterServices
from pitcrew.http.models import PurgeRequest

log = logging.getLogger(__name__)
MAX_PER_REQUEST = 5000
LISTED = 100


def purge_now(dl: DeadletterServices, request: PurgeRequest, actor: str) -> dict[str, Any]:
    store = dl.store
    if request.group:
        store.group(request.group)  # NotFound: a 400 naming the group
    chosen: list[FailedMessage] = []
    skipped = 0
    more = False
    for message in _selection(dl, request):
        if message.status == "replaying":
            skipped += 1
            continue
        if len(chosen) >= MAX_PER_REQUEST:
            more = True
            break
        chosen.append(message)
    groups: dict[str, int] = {}
    for message in chosen:
        groups[message.group] = groups.get(message.group, 0) + 1
    selection = ({"group": request.group} if request.group
                 else {"before": request.before.isoformat() if request.before else None})
    result: dict[str, Any] = {
        "dryRun": request.dry_run, "selection": selection, "count": len(chosen),
        "skipped": skipped, "more": more, "groups": groups,
        "messages": [_listed(m) for m in chosen[:LISTED]],
    }
    if request.dry_run:
        dl.audit.append(AuditRecord(
            actor=actor, action="dlq.purge.now", target=_target(request), outcome="planned",
            correlation_id=request.group or str(selection["before"]),
            details={"count": len(chosen), "skipped": skipped, "more": more,
                     "groups": dict(list(groups.items())[:50])}))
        return result
    broker = _delete_broker_copies(dl, chosen)
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="dlq-purge") as pool:
        list(pool.map(store.delete, chosen))
    if request.group and not more and not skipped and \
            next(store.in_group(request.group), None) is None:
        store.delete_group(request.group)
        result["groupDeleted"] = True
        resolve_group(dl, request.group, f"purged by {actor}")
    result.update(purged=len(chosen), brokerDeleted=broker)
    details: dict[str, Any] = {
        "purged": len(chosen), "skipped": skipped, "more": more, "brokerDeleted": broker,
        "groups": dict(list(groups.items())[:50]), "messages": [m.id for m in chosen[:LISTED]]}
    deleted_something = bool(chosen) or bool(result.get("groupDeleted"))
    if result.get("groupDeleted"):
        details["groupDeleted"] = True
    if not deleted_something:  # nothing deleted: a no-op, never "succeeded"
        details["reason"] = (f"all {skipped} matching message(s) are held by a replay"
                             if skipped else "no message matched")
    dl.audit.append(AuditRecord(
        actor=actor, action="dlq.purge.now", target=_target(request),
        outcome="succeeded" if deleted_something else "skipped",
        correlation_id=request.group or str(selection["before"]), details=details))
    log.info("purged %d failed message(s) (%s) for %s", len(chosen), selection, actor)
    return result


def _selection(dl: DeadletterServices, request: PurgeRequest) -> Iterator[FailedMessage]:
    if request.group:
        return dl.store.in_group(request.group, page_size=1000)
    assert request.before is not None
    return dl.store.ingested_before(request.before)


def _target(request: PurgeRequest) -> str:
    return f"dlq-group:{request.group}" if request.group else "dlq-store"


def _listed(m: FailedMessage) -> dict[str, Any]:
    return {"id": m.id, "group": m.group, "entity": m.entity, "status": m.status,
            "ingestedAt": m.ingested_at.isoformat(), "bodySize": m.body_size,
            "preview": m.preview}


def _delete_broker_copies(dl: DeadletterServices, messages: list[FailedMessage]) -> int:
    """Complete, in each Service Bus dead-letter queue, the messages being purged that are still
    there. A source no longer in the policy is left alone (pitcrew no longer reads it)."""
    by_source: dict[str, set[int]] = {}
    for m in messages:
        if m.source_kind == "servicebus" and m.sequence_number is not None:
            by_source.setdefault(m.source, set()).add(m.sequence_number)
    deleted = 0
    for name, numbers in by_source.items():
        try:
            config = dl.policy.source(name)
        except KeyError:
            continue
        if not isinstance(config, ServiceBusSource):
            continue
        deleted += dl.brokers.delete_deadletters(
            config, numbers, max_messages=max(dl.policy.scan_max_messages, len(numbers)))
    return deleted
