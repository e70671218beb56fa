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
    """POST/OPTIONS /api/events: Event Grid schema or CloudEvents, with both handshakes."""
    from pitcrew.events import (
        abuse_protection_headers,
        only_events,
        parse_delivery,
        validation_response,
    )

    if method.upper() == "OPTIONS":
        return HttpResult(200, None, abuse_protection_headers(headers))
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    items = parse_delivery(body, content_type)
    handshake = validation_response(items)
    if handshake is not None:
        return HttpResult(200, handshake)
    events = only_events(items)
    from pitcrew.intake import process_event, validate_event
    from pitcrew.services import get_services

    for event in events:  # all or nothing: reject the delivery before acting on any of it
        validate_event(event)
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
    """POST /api/alerts: an Azure Monitor action group webhook (Common Alert Schema)."""
    from pitcrew.events import parse_alert
    from pitcrew.intake import process_alert
    from pitcrew.services import get_services

    alert = parse_alert(body)
    outcome = process_alert(alert, get_services())
    return HttpResult(200, outcome.to_dict())


@http_errors
def list_audit(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/audit?since=&until=&target=&limit= (role Reader)."""
    from pitcrew.auth import Role, require
    from pitcrew.services import get_services

    require(headers, Role.READER)
    now = datetime.now(UTC)
    until = _time_param(query, "until", now)
    since = _time_param(query, "since", until - timedelta(days=1))
    if since >= until:
        raise InvalidInput("since", "must be earlier than until")
    limit = _int_param(query, "limit", 200, 1, 5000)
    target = query.get("target") or None
    records = get_services().audit.query(since=since, until=until, target=target, limit=limit)
    return HttpResult(200, {"records": [r.to_dict() for r in records]})


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
    raw = query.get(name)
    if not raw:
        return default
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(name, f"is not an ISO 8601 time: {raw[:40]!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(name, f"must be a whole number from {low} to {high}")
    return int(raw)
