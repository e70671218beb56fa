"""What pitcrew answers over HTTP, independent of the Functions binding types.

Each entry point takes plain data (method, headers, query, body) and returns an HttpResult; the
triggers in functions/ only translate. Errors map to status codes in one place: bad input is a
400 naming the problem, a missing principal 401, a missing role 403, an invalid policy 503 —
never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec

from pitcrew.errors import Forbidden, InvalidInput, PolicyInvalid, RetryLater, Unauthorized

log = logging.getLogger(__name__)
P = ParamSpec("P")
BATCH_CONCURRENCY = 4


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _error(status: int, code: str, message: str, **extra: Any) -> HttpResult:
    return HttpResult(status, {"error": code, "message": message, **extra})


def http_errors(fn: Callable[P, HttpResult]) -> Callable[P, HttpResult]:
    """Map pitcrew's errors to HTTP; anything else is logged and answered with a generic 500."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> HttpResult:
        try:
            return fn(*args, **kwargs)
        except InvalidInput as exc:
            return HttpResult(400, exc.to_dict())
        except Unauthorized as exc:
            return HttpResult(401, {"error": "unauthorized", "message": str(exc)},
                              {"WWW-Authenticate": 'Bearer realm="pitcrew"'})
        except Forbidden as exc:
            return _error(403, "forbidden", str(exc))
        except PolicyInvalid as exc:
            log.error("refusing to act: %s", exc)
            return _error(503, "policy_invalid", "pitcrew refuses to act on an invalid policy",
                          problems=exc.problems, source=exc.source)
        except RetryLater as exc:
            return HttpResult(503, {"error": "retry_later", "message": str(exc)},
                              {"Retry-After": "30"})
        except Exception:
            log.exception("unhandled error in %s", fn.__name__)
            return _error(500, "internal_error", "pitcrew failed to handle the request; "
                          "it is logged and the sender should retry")

    return wrapper


@http_errors
def receive_events(method: str, headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST/OPTIONS /api/events: Event Grid schema or CloudEvents (structured or binary mode),
    with both handshakes. The OPTIONS handshake grants only the origins in
    PITCREW_WEBHOOK_ALLOWED_ORIGINS (default eventgrid.azure.net)."""
    import os

    from pitcrew.events import (
        SubscriptionValidation,
        WebhookPolicy,
        abuse_protection_headers,
        only_events,
        parse_request,
        validation_response,
    )

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
    from pitcrew.intake import process_event, validate_event
    from pitcrew.services import get_services

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
    # Event Grid batches up to 5,000 events; each is independent and I/O bound (storage,
    # webhooks), so they run side by side. Any failure fails the delivery: Event Grid retries
    # the batch and the events already handled end at their claims as duplicates.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(BATCH_CONCURRENCY, len(events))) as pool:
        outcomes = [o.to_dict() for o in pool.map(lambda e: process_event(e, services), events)]
    return HttpResult(200, {"events": outcomes})


@http_errors
def receive_alert(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/alerts: an Azure Monitor action group webhook (Common Alert Schema).

    The function key admits the request to the route; when PITCREW_ALERT_TOKEN_AUDIENCE is set
    the action group's Secure Webhook token (Entra ID) must also be valid, checked before the
    body is read: 401 with the reason when it is missing or invalid, 503 retry_later when
    Entra's signing keys cannot be fetched."""
    from pitcrew.auth import authenticate_alert
    from pitcrew.events import parse_alert
    from pitcrew.intake import process_alert
    from pitcrew.services import get_services

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
def list_audit(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/audit?since=&until=&target=&actor=&action=&limit=&continuation= (role Reader).

    The range may be at most 31 days (default: the last day); the answer is one page,
    `{"records": [...], "continuation": token | null, "since": ..., "until": ...}`. A token
    carries its range, so `?continuation=` alone fetches the next page; filters must repeat.
    """
    from pitcrew.audit import AuditQuery, window_of
    from pitcrew.auth import Role, require
    from pitcrew.paging import limit_param, token_param
    from pitcrew.services import get_services

    require(headers, Role.READER)
    limit = limit_param(query)
    continuation = token_param(query)
    token_since, token_until = window_of(continuation)
    until = _time_param(query, "until", token_until or datetime.now(UTC))
    try:
        default_since = token_since or until - timedelta(days=1)
    except OverflowError:
        raise InvalidInput("until", "is too early") from None
    since = _time_param(query, "since", default_since)
    wanted = AuditQuery(
        since=since,
        until=until,
        target=query.get("target") or None,
        actor=query.get("actor") or None,
        action=query.get("action") or None,
    )
    page = get_services().audit.page(wanted, limit=limit, continuation=continuation)
    body = page.map(lambda record: record.to_dict()).body(
        "records", since=wanted.since.isoformat(), until=wanted.until.isoformat()
    )
    return HttpResult(200, body)


def health() -> HttpResult:
    """GET /api/health: the app is up and its policy is valid (no storage round trip)."""
    from pitcrew import __version__
    from pitcrew.runtime import get_runtime

    try:
        policy = get_runtime().policy()
    except PolicyInvalid as exc:
        return HttpResult(503, {"status": "unhealthy", "policy": "invalid",
                                "problems": exc.problems, "version": __version__})
    return HttpResult(200, {"status": "ok", "mode": policy.mode, "version": __version__})


def _time_param(query: Mapping[str, str], name: str, default: datetime) -> datetime:
    """An ISO 8601 time (UTC when it names no offset), in UTC."""
    raw = query.get(name)
    if not raw:
        return default.astimezone(UTC)
    try:
        value = datetime.fromisoformat(raw)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise InvalidInput(name, f"is not an ISO 8601 time: {raw[:40]!r}") from None
    except OverflowError:
        raise InvalidInput(name, f"is out of range: {raw[:40]!r}") from None


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(name, f"must be a whole number from {low} to {high}")
    return int(raw)
