"""The entry points of intake that the triggers call: `POST/OPTIONS /api/events`,
`POST /api/alerts`, `GET /api/events/rejected`, and the outbox's retry timer."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from pitcrew.auth import Role, authenticate_alert, require
from pitcrew.bootstrap import get_services
from pitcrew.errors import InvalidInput, Unauthorized
from pitcrew.events import (
    SubscriptionValidation,
    WebhookPolicy,
    abuse_protection_headers,
    only_events,
    parse_alert,
    parse_request,
    validation_response,
)
from pitcrew.http.errors import HttpResult, http_errors
from pitcrew.http.models import RejectedParams
from pitcrew.intake.pipeline import process_alert, process_event, process_events, validate_event
from pitcrew.notify.outbox import DrainReport

log = logging.getLogger(__name__)
# Measured (bench/intake.py, make bench): the events of one delivery are I/O bound, 16 at a
# time beat 4; the host's 1 MB body cap already keeps a delivery to a few thousand events.
BATCH_CONCURRENCY = 16
# Event Grid waits 30 s for an answer. Measured on the local host, 600 events of one delivery
# took ~17 s at 16 at a time, so a larger delivery is refused (400 naming this limit) before
# any event is acted on, rather than timed out half handled: lower the subscription's
# "max events per batch" to this or fewer.
MAX_BATCH_EVENTS = 500


@http_errors
def receive_events(method: str, headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST/OPTIONS /api/events: Event Grid schema or CloudEvents (structured or binary mode),
    with both handshakes. The OPTIONS handshake grants only the origins in
    PITCREW_WEBHOOK_ALLOWED_ORIGINS (default eventgrid.azure.net)."""
    if method.upper() == "OPTIONS":
        policy = WebhookPolicy.from_env(os.environ)
        return HttpResult(200, None, abuse_protection_headers(headers, policy))
    items = parse_request(body, headers)
    handshake = validation_response(items)
    if handshake is not None:
        if len(items) > 1:
            # Event Grid sends its validation event alone; answering it would skip the rest.
            where = next(
                i for i, item in enumerate(items) if isinstance(item, SubscriptionValidation)
            )
            raise InvalidInput(
                f"[{where}].eventType",
                f"a SubscriptionValidationEvent must be delivered alone; this delivery holds "
                f"{len(items) - 1} other event(s), none of which was handled",
            )
        return HttpResult(200, handshake)
    events = only_events(items)
    if len(events) > MAX_BATCH_EVENTS:
        raise InvalidInput(
            "body",
            f"holds {len(events)} events; at most {MAX_BATCH_EVENTS} are handled per delivery "
            f"(within Event Grid's 30 s): set the subscription's max events per batch to "
            f"{MAX_BATCH_EVENTS} or fewer; none of these events was handled",
        )
    for index, event in enumerate(events):  # all or nothing: reject before acting on any
        try:
            validate_event(event)
        except InvalidInput as exc:
            if len(events) == 1:
                raise
            raise InvalidInput(f"[{index}].{exc.field}", exc.problem) from None
    services = get_services()
    if len(events) == 1:
        return HttpResult(200, {"events": [process_event(events[0], services).to_dict()]})
    outcomes = [o.to_dict() for o in
                process_events(events, services, concurrency=BATCH_CONCURRENCY)]
    return HttpResult(200, {"events": outcomes})


@http_errors
def receive_alert(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/alerts: an Azure Monitor action group webhook (Common Alert Schema).

    The function key admits the request to the route; when PITCREW_ALERT_TOKEN_AUDIENCE is set
    the action group's Secure Webhook token (Entra ID) must also be valid, checked before the
    body is read: 401 with the reason when it is missing or invalid, 503 retry_later when
    Entra's signing keys cannot be fetched."""
    try:
        caller = authenticate_alert(headers)
    except Unauthorized as exc:
        # Azure Monitor does not retry a 401: say so where an SRE looks (never the token).
        log.warning("pitcrew.alerts.refused: %s", exc)
        raise
    alert = parse_alert(body)
    outcome = process_alert(alert, get_services())
    if caller is not None:
        log.info("alert %r from %s: %s", alert.id, caller.actor, outcome.kind)
    return HttpResult(200, outcome.to_dict())


@http_errors
def list_rejected(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/events/rejected?limit=&continuation=&since=&until=&source=&type=&function=
    (role Reader): poison events, newest day first, `{"rejected": [...], "continuation": token
    | null}`; each filter given is matched exactly."""
    require(headers, Role.READER)
    wanted = RejectedParams.of(query)
    page = get_services().rejected.page(
        limit=wanted.limit, continuation=wanted.continuation, since=wanted.since,
        until=wanted.until, source=wanted.source, type=wanted.type, function=wanted.function)
    return HttpResult(200, page.map(lambda item: item.to_dict()).body("rejected"))


def drain_outbox() -> DrainReport:
    """Retry every notification whose next attempt is due (the retry_outbox timer)."""
    services = get_services()
    report = services.outbox.drain(services.channels)
    if report.delivered or report.failed:
        log.info("outbox: %s", report.to_dict())
    return report
