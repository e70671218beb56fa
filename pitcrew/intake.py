"""One event in, exactly one effect out: claim, pick the handler, act, audit, complete.

A small pipeline in the Alertmanager spirit; the handlers are a registry keyed by event type
(Cloud Custodian style), so later areas add theirs without touching this flow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.errors import InvalidInput
from pitcrew.events import (
    AlertEvent,
    Event,
    KeyVaultObjectEvent,
    is_keyvault_event,
    keyvault_event,
)
from pitcrew.notify.messages import alert_notification, expiry_notification
from pitcrew.notify.outbox import DrainReport
from pitcrew.services import Services, get_services

log = logging.getLogger(__name__)

Handler = Callable[[Any, Services], str]
Parser = Callable[[Event], Any]
OutcomeKind = Literal["handled", "duplicate", "ignored", "rejected"]


@dataclass(frozen=True)
class Outcome:
    event_id: str
    kind: OutcomeKind
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.event_id, "outcome": self.kind, "detail": self.detail}


_HANDLERS: list[tuple[Callable[[Event], bool], Parser, Handler]] = []


def handles(
    predicate: Callable[[Event], bool], *, parse: Parser = lambda event: event
) -> Callable[[Handler], Handler]:
    """Register a handler for the events `predicate` accepts; the first match wins. `parse`
    turns the envelope into the handler's typed event and runs before anything is claimed, so
    bad input is rejected (InvalidInput) without leaving state behind."""

    def register(handler: Handler) -> Handler:
        _HANDLERS.append((predicate, parse, handler))
        return handler

    return register


def handler_for(event: Event) -> tuple[Parser, Handler] | None:
    for predicate, parse, handler in _HANDLERS:
        if predicate(event):
            return parse, handler
    return None


def validate_event(event: Event) -> None:
    """Raise InvalidInput when an event a handler would take is malformed."""
    found = handler_for(event)
    if found is not None:
        found[0](event)


def process_event(event: Event, services: Services) -> Outcome:
    """Handle one event exactly once. Exceptions propagate (after the claim is released) so the
    platform retries; a duplicate ends at the claim."""
    found = handler_for(event)
    if found is None:
        log.info("event %s of type %s: no handler, ignored", event.id, event.type)
        return Outcome(event.id, "ignored", f"no handler for {event.type}")
    parse, handler = found
    typed = parse(event)
    # Keyed on the event's identity (source + id), so a sender cannot pre-claim the ids of
    # another source; the readable id and source stay in the claim row.
    claim = services.state.claim(
        "event", event.claim_key, label={"EventId": event.id, "Source": event.source}
    )
    if claim is None:
        log.info("event %s is a duplicate: already handled", event.id)
        return Outcome(event.id, "duplicate", "already handled")
    try:
        detail = handler(typed, services)
    except Exception as exc:
        services.state.release(claim, reason=type(exc).__name__)
        raise
    services.state.complete(claim, outcome=detail)
    return Outcome(event.id, "handled", detail)


def handle_delivered_event(
    *,
    id: str | None,
    event_type: str | None,
    subject: str | None,
    topic: str | None = None,
    source: str | None = None,
    event_time: Any = None,
    data: Any = None,
    data_version: str | None = None,
    schema: Literal["eventgrid", "cloudevents"] = "eventgrid",
    function: str = "",
) -> Outcome:
    """An event the Functions Event Grid binding delivered.

    A permanently malformed event (InvalidInput: bad envelope, bad data, a validation event
    sent as a notification) is recorded (GET /api/events/rejected, audit `intake.rejected`) and
    acknowledged, so Event Grid stops retrying at once. Anything else raises so the platform
    retries (and, past its retries, dead-letters): nothing is dropped silently."""
    from pitcrew.events import event_from_binding

    fields: dict[str, Any] = {
        "id": id, "event_type": event_type, "subject": subject, "topic": topic,
        "source": source, "event_time": event_time, "data": data,
        "data_version": data_version, "schema": schema,
    }
    services = get_services()
    try:
        event = event_from_binding(**fields)
        validate_event(event)
        outcome = process_event(event, services)
    except InvalidInput as exc:
        from pitcrew.rejected import reject

        rejected = reject(fields, exc, services, function=function)
        return Outcome(rejected.id, "rejected", str(exc))
    log.info("event %r (%s): %s, %s", event.id, event.type, outcome.kind, outcome.detail)
    return outcome


def drain_outbox() -> DrainReport:
    """Retry every notification whose next attempt is due (the retry_outbox timer)."""
    services = get_services()
    report = services.outbox.drain(services.channels)
    if report.delivered or report.failed:
        log.info("outbox: %s", report.to_dict())
    return report


# ------------------------------------------------------------------ Key Vault

_EXPIRY_CONDITIONS = ("NearExpiry", "Expired")


@handles(is_keyvault_event, parse=keyvault_event)
def handle_keyvault(kv: KeyVaultObjectEvent, services: Services) -> str:
    if kv.condition not in _EXPIRY_CONDITIONS:
        return f"no action for {kv.condition}"
    # When a rotation strategy owns the secret, the rotation engine acts instead of a person.
    from pitcrew.rotation.api import rotate_on_event

    rotated = rotate_on_event(kv, services)
    if rotated is not None:
        return rotated
    notification = expiry_notification(kv, services.policy)
    dispatch = services.router.send(notification)
    services.audit.append(AuditRecord(
        actor=app_identity(),
        action="notify.expiry",
        target=kv.target,
        outcome=dispatch.outcome,  # type: ignore[arg-type]
        correlation_id=kv.id,
        details={
            "eventType": kv.event.type,
            "version": kv.version,
            "expires": kv.expires.isoformat() if kv.expires else None,
            "notification": notification.id,
            **dispatch.to_dict(),
        },
    ))
    return dispatch.detail


# ------------------------------------------------------------------ alerts


def process_alert(alert: AlertEvent, services: Services) -> Outcome:
    """An Azure Monitor alert: one notification per (alert, condition, time), deduplicated."""
    claim = services.state.claim("alert", alert.id)
    if claim is None:
        return Outcome(alert.id, "duplicate", "already handled")
    try:
        notification = alert_notification(alert)
        dispatch = services.router.send(notification)
        services.audit.append(AuditRecord(
            actor=app_identity(),
            action="notify.alert",
            target=alert.target_ids[0] if alert.target_ids else alert.rule,
            outcome=dispatch.outcome,  # type: ignore[arg-type]
            correlation_id=alert.alert_id,
            details={"rule": alert.rule, "condition": alert.condition,
                     "severity": alert.severity, "notification": notification.id,
                     **dispatch.to_dict()},
        ))
        detail = dispatch.detail
        from pitcrew.deadletter.hooks import ingest_for_alert  # a dead-letter depth alert ingests

        ingested = ingest_for_alert(alert, services)
        if ingested:
            detail += "; ingested " + ", ".join(ingested)
    except Exception as exc:
        # Released, so the sender's retry repeats only what did not finish (the outbox and the
        # ingest are idempotent).
        services.state.release(claim, reason=type(exc).__name__)
        raise
    services.state.complete(claim, outcome=detail)
    return Outcome(alert.id, "handled", detail)


# Areas register their handlers by importing their hooks (after `handles` exists).
import pitcrew.deadletter.hooks  # noqa: E402, F401
