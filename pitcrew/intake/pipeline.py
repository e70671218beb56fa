"""One event or alert in, exactly one effect out: parse -> claim -> handle -> audit -> complete.

A small pipeline in the Alertmanager spirit. Parsing happens before anything is claimed, so bad
input (InvalidInput) leaves no state behind. The claim (pitcrew.ports.StateStore) makes a
duplicate end here; the handler acts and audits what it did (intake.handlers); the claim is
completed with the outcome, or released if the handler raised, so the platform's retry
repeats only what did not finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.bootstrap import Services, get_services
from pitcrew.errors import InvalidInput
from pitcrew.events import AlertEvent, BindingEvent, Event, event_from_binding
from pitcrew.intake.handlers import Handler, handle_alert, handler_for
from pitcrew.intake.rejected import ACTION as REJECTED_ACTION
from pitcrew.intake.rejected import RejectedEvent
from pitcrew.parallel import map_in_threads
from pitcrew.state import Claim

log = logging.getLogger(__name__)

OutcomeKind = Literal["handled", "duplicate", "ignored", "rejected"]


@dataclass(frozen=True)
class Outcome:
    event_id: str
    kind: OutcomeKind
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.event_id, "outcome": self.kind, "detail": self.detail}


def validate_event(event: Event) -> None:
    """Raise InvalidInput when an event a handler would take is malformed."""
    handler = handler_for(event)
    if handler is not None:
        handler.parse(event)


def process_event(event: Event, services: Services) -> Outcome:
    """Handle one event exactly once. Exceptions propagate (after the claim is released) so the
    platform retries; a duplicate ends at the claim."""
    handler = handler_for(event)
    if handler is None:
        log.info("event %s of type %s: no handler, ignored", event.id, event.type)
        return Outcome(event.id, "ignored", f"no handler for {event.type}")
    typed = handler.parse(event)
    # Keyed on the event's identity (source + id), so a sender cannot pre-claim the ids of
    # another source; the readable id and source stay in the claim row.
    return _once(services, "event", event.claim_key, event.id,
                 lambda: handler.handle(typed, services), label=_label(event))


def process_events(events: Sequence[Event], services: Services, *,
                   concurrency: int) -> list[Outcome]:
    """The events of one delivery, each still handled once and audited alone, at the cost of
    fewer round trips: claimed together (a transaction per 100 claims), handled `concurrency`
    at a time (or together, by a handler with `handle_many`: Key Vault expiries join their
    alert groups at once), completed together; the delivery's audit records are written
    together and its silences read once. An event that fails releases its claim; the others
    are completed, then the first failure is raised so the platform retries the delivery
    (whose handled events then end at their claims as duplicates)."""
    outcomes: dict[int, Outcome] = {}
    todo: dict[str, tuple[int, Event, Handler, Any]] = {}
    repeats: list[tuple[int, Event]] = []
    for index, event in enumerate(events):
        handler = handler_for(event)
        if handler is None:
            outcomes[index] = Outcome(event.id, "ignored", f"no handler for {event.type}")
        elif event.claim_key in todo:
            repeats.append((index, event))  # the same event twice: after its first copy
        else:
            todo[event.claim_key] = (index, event, handler, handler.parse(event))

    failures: list[Exception] = []
    # The claims are completed while the delivery's audit records are written: two
    # transactions of independent tables, one waiting on the emulator while the other is
    # built. Both are done before the delivery is answered.
    side = ThreadPoolExecutor(max_workers=1)
    completed: Future[None] | None = None
    with side, services.audit.deferred(), services.alerting.silences.snapshot():
        claims = services.state.claim_new(
            "event", [(key, _label(event)) for key, (_, event, _, _) in todo.items()])

        def one(key: str) -> str | Outcome:
            _, event, handler, typed = todo[key]
            if key not in claims:  # claimed before (a retried delivery): the one-by-one path
                return _once(services, "event", key, event.id,
                             lambda: handler.handle(typed, services), label=_label(event))
            return handler.handle(typed, services)

        # A handler that takes a delivery's events together gets those it has claims for.
        together: dict[Handler, list[str]] = {}
        alone: list[str] = []
        for key, (_, _, handler, _) in todo.items():
            if handler.handle_many is not None and key in claims:
                together.setdefault(handler, []).append(key)
            else:
                alone.append(key)
        results: dict[str, str | Outcome | Exception] = dict(
            zip(alone, map_in_threads(one, alone, concurrency=concurrency), strict=True))
        for handler, keys in together.items():
            assert handler.handle_many is not None
            try:
                details = handler.handle_many([todo[key][3] for key in keys], services,
                                              concurrency=concurrency)
            except Exception as exc:  # a handler that fails as a whole fails each event
                details = [exc] * len(keys)
            results.update(zip(keys, details, strict=True))

        done: list[tuple[Claim, str]] = []
        for key, (index, event, _, _) in todo.items():
            result = results[key]
            claim = claims.get(key)
            if isinstance(result, Exception):
                if claim is not None:
                    # Released, so the retry repeats only what did not finish.
                    services.state.release(claim, reason=type(result).__name__)
                failures.append(result)
            elif isinstance(result, Outcome):
                outcomes[index] = result
            else:
                outcomes[index] = Outcome(event.id, "handled", result)
                if claim is not None:
                    done.append((claim, result))
        completed = side.submit(services.state.complete_many, done)
    assert completed is not None  # set in the block, which raised otherwise
    completed.result()
    if failures:
        raise failures[0]
    for index, event in repeats:
        outcomes[index] = process_event(event, services)
    return [outcomes[index] for index in range(len(events))]


def _label(event: Event) -> dict[str, str]:
    return {"EventId": event.id, "Source": event.source}


def process_alert(alert: AlertEvent, services: Services) -> Outcome:
    """An Azure Monitor alert: one notification per (alert, condition, time), deduplicated."""
    return _once(services, "alert", alert.id, alert.id, lambda: handle_alert(alert, services))


def _once(services: Services, scope: str, key: str, ident: str, handle: Callable[[], str], *,
          label: Mapping[str, str] | None = None) -> Outcome:
    """Claim, handle, complete: the handler runs once per key, whoever delivers it."""
    claim = services.state.claim(scope, key, label=label)
    if claim is None:
        log.info("%s %s is a duplicate: already handled", scope, ident)
        return Outcome(ident, "duplicate", "already handled")
    try:
        detail = handle()
    except Exception as exc:
        # Released, so the sender's retry repeats only what did not finish (the outbox and the
        # ingest are idempotent).
        services.state.release(claim, reason=type(exc).__name__)
        raise
    services.state.complete(claim, outcome=detail)
    return Outcome(ident, "handled", detail)


def handle_delivered_event(binding: BindingEvent, *, function: str = "") -> Outcome:
    """An event the Functions Event Grid binding delivered.

    A permanently malformed event (InvalidInput: bad envelope, bad data, a validation event
    sent as a notification) is recorded (GET /api/events/rejected, audit `intake.rejected`) and
    acknowledged, so Event Grid stops retrying at once. Anything else raises so the platform
    retries (and, past its retries, dead-letters): nothing is dropped silently."""
    services = get_services()
    try:
        event = event_from_binding(binding)
        validate_event(event)
        outcome = process_event(event, services)
    except InvalidInput as exc:
        rejected = reject(binding, exc, services, function=function)
        return Outcome(rejected.id, "rejected", str(exc))
    log.info("event %r (%s): %s, %s", event.id, event.type, outcome.kind, outcome.detail)
    return outcome


def reject(
    binding: BindingEvent, error: InvalidInput, services: Services, *, function: str = ""
) -> RejectedEvent:
    """Record a poison event (store row, audit record, one warning line). Raises if storage
    fails, so the platform retries: a rejection is only acknowledged once it is recorded."""
    rejected = RejectedEvent.of(binding, error, function=function)
    services.rejected.add(rejected)
    services.audit.append(AuditRecord(
        actor=app_identity(),
        action=REJECTED_ACTION,
        target=rejected.source or "events",
        outcome="failed",
        correlation_id=rejected.id,
        details={
            "field": rejected.field,
            "problem": rejected.problem,
            "eventType": rejected.type,
            "schema": rejected.schema,
            "rejectedEvent": rejected.record_id,
        },
    ))
    log.warning(
        "event %r (%s) from %r rejected, not retried: %s; see GET /api/events/rejected",
        rejected.id[:200], rejected.type[:100], rejected.source[:200], error,
    )
    return rejected
