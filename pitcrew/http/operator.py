"""Routes for operators and probes: `GET /api/health` and `GET /api/audit` (role Reader)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pitcrew import __version__
from pitcrew.audit import AuditQuery, window_of
from pitcrew.auth import Role, require
from pitcrew.bootstrap import get_services
from pitcrew.errors import InvalidInput, PolicyInvalid
from pitcrew.http.errors import HttpResult, http_errors
from pitcrew.http.models import AuditParams
from pitcrew.runtime import get_runtime


@http_errors
def list_audit(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/audit?since=&until=&target=&actor=&action=&limit=&continuation= (role Reader).

    The range may be at most 31 days (default: the last day); the answer is one page,
    `{"records": [...], "continuation": token | null, "since": ..., "until": ...}`. A token
    carries its range, so `?continuation=` alone fetches the next page; filters must repeat.
    """
    require(headers, Role.READER)
    params = AuditParams.of(query)
    token_since, token_until = window_of(params.continuation)
    until = params.until or token_until or datetime.now(UTC)
    try:
        default_since = token_since or until - timedelta(days=1)
    except OverflowError:
        raise InvalidInput("until", "is too early") from None
    wanted = AuditQuery(
        since=params.since or default_since,
        until=until,
        target=params.target,
        actor=params.actor,
        action=params.action,
    )
    page = get_services().audit.page(wanted, limit=params.limit, continuation=params.continuation)
    body = page.map(lambda record: record.to_dict()).body(
        "records", since=wanted.since.isoformat(), until=wanted.until.isoformat()
    )
    return HttpResult(200, body)


def health() -> HttpResult:
    """GET /api/health: the app is up and its policy is valid (no storage round trip)."""
    try:
        policy = get_runtime().policy()
    except PolicyInvalid as exc:
        return HttpResult(503, {"status": "unhealthy", "policy": "invalid",
                                "problems": exc.problems, "version": __version__})
    return HttpResult(200, {"status": "ok", "mode": policy.mode, "version": __version__})
