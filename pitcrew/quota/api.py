"""HTTP use cases under /api/quota (Reader to view, Operator to act) and the timers' entry
points. Plain data in, HttpResult out; the triggers only translate."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from pitcrew import links
from pitcrew.auth import Role, require
from pitcrew.bootstrap import get_services
from pitcrew.errors import InvalidInput, RetryLater
from pitcrew.http.errors import HttpResult, http_errors
from pitcrew.http.models import PageQuery, RequestModel
from pitcrew.quota.model import LEVELS, RECORDED, QuotaId
from pitcrew.quota.ports import QuotaServices, StateFilter
from pitcrew.quota.requests import follow_all, request_increase
from pitcrew.quota.scan import ScanReport, scan

log = logging.getLogger(__name__)
STATUSES = RECORDED
MAX_LIMIT_VALUE = 10_000_000


def _q() -> QuotaServices:
    return get_services().quota


def _text(field: str, pattern: str, max_len: int = 128) -> Any:
    compiled = re.compile(pattern)

    def check(raw: Any) -> str | None:
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or len(raw) > max_len or not compiled.match(raw):
            raise InvalidInput(field, f"must match {pattern}")
        return raw

    return BeforeValidator(check)


class QuotaListQuery(PageQuery):
    subscription: Annotated[str | None, _text("subscription", r"^[0-9a-fA-F-]{36}$")] = None
    provider: Annotated[str | None, _text("provider", r"^[A-Za-z0-9.]+$")] = None
    location: Annotated[str | None, _text("location", r"^[a-z0-9]{1,40}$")] = None
    name: Annotated[str | None, _text("name", r"^[A-Za-z0-9._-]{1,128}$")] = None
    level: Annotated[str | None, _text("level", "^(" + "|".join(LEVELS) + ")$")] = None


def _status(raw: Any) -> str | None:
    """A recorded status, in any case (notadjustable -> NotAdjustable)."""
    if raw is None or raw == "":
        return None
    known = {s.lower(): s for s in STATUSES}
    if not isinstance(raw, str) or raw.lower() not in known:
        raise InvalidInput("status", f"must be one of {', '.join(STATUSES)}")
    return known[raw.lower()]


class RequestListQuery(PageQuery):
    status: Annotated[str | None, BeforeValidator(_status)] = None


def _quota_id(raw: Any) -> QuotaId:
    if not isinstance(raw, str):
        raise InvalidInput("quota", "must be SCOPE/NAME")
    return QuotaId.parse(raw)


def _new_limit(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_LIMIT_VALUE:
        raise InvalidInput("limit", f"must be a whole number from 1 to {MAX_LIMIT_VALUE}")
    return raw


def _reason(raw: Any) -> str:
    if raw is None:
        return "requested by an operator"
    if not isinstance(raw, str) or len(raw) > 500:
        raise InvalidInput("reason", "must be text of at most 500 characters")
    return raw


def _dry_run(raw: Any) -> bool:
    if raw is None:
        return True
    if not isinstance(raw, bool):
        raise InvalidInput("dryRun", "must be true or false")
    return raw


class IncreaseBody(RequestModel):
    """`POST /api/quota/requests`: {"quota": "SCOPE/NAME", "limit": N, "dryRun": true,
    "reason": "..."}; dryRun defaults to true (see what would be asked first)."""

    # Defaults run through the validators too (validate_default): a missing field is a 400.
    quota: Annotated[QuotaId | None, BeforeValidator(_quota_id)] = None
    limit: Annotated[int | None, BeforeValidator(_new_limit)] = None
    dry_run: Annotated[bool, BeforeValidator(_dry_run)] = Field(default=True, alias="dryRun")
    reason: Annotated[str, BeforeValidator(_reason)] = "requested by an operator"


@http_errors
def list_quotas(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/quota?limit=&continuation=&subscription=&provider=&location=&name=&level="""
    require(headers, Role.READER)
    params = QuotaListQuery.of(query)
    q = _q()
    page = q.store.page(StateFilter(params.subscription, params.provider, params.location,
                                    params.name, params.level),
                        limit=params.limit, continuation=params.continuation)
    opened = {r.quota.id: r.to_dict() for r in q.requests.open_requests()}
    return HttpResult(200, page.map(lambda s: s.to_dict(opened.get(s.quota.id))).body("quotas"))


@http_errors
def list_requests(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/quota/requests?limit=&continuation=&status= (newest first)."""
    require(headers, Role.READER)
    params = RequestListQuery.of(query)
    page = _q().requests.page(limit=params.limit, continuation=params.continuation,
                              status=params.status)
    return HttpResult(200, page.map(lambda r: r.to_dict()).body("requests"))


@http_errors
def create_request(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/quota/requests (Operator): 200 with the plan on a dry run, 202 with the
    request once sent, 200 with the open request when one exists already."""
    principal = require(headers, Role.OPERATOR)
    request = IncreaseBody.from_body(body)
    assert request.quota is not None and request.limit is not None  # the validators saw to it
    q = _q()
    state = q.store.get(request.quota)
    if state is None:
        raise InvalidInput("quota", "is not a quota pitcrew has scanned (see GET /api/quota)")
    if request.limit <= state.limit:
        raise InvalidInput("limit", f"must be above the current limit {state.limit:g}")
    dry_run = request.dry_run or q.policy.mode == "plan"
    outcome = request_increase(q, state, request.limit, actor=principal.actor,
                               reason=request.reason, dry_run=dry_run)
    status = 202 if outcome.sent else 200
    location = {"Location": links.location("/api/quota/requests")} if outcome.sent else {}
    return HttpResult(status, outcome.to_dict(), location)


@http_errors
def scan_now(headers: Mapping[str, str]) -> HttpResult:
    """POST /api/quota/scan (Operator): one scan now; its report."""
    principal = require(headers, Role.OPERATOR)
    report = scan(_q())
    log.info("quota scan asked by %s", principal.actor)
    return HttpResult(200, report.to_dict())


def run_scheduled_scan(now: datetime | None = None) -> ScanReport | None:
    """The timer: a scan when one is due (every `quota.every_minutes`), once per slot whatever
    the number of instances (a StateStore claim on the slot)."""
    q = _q()
    policy = q.policy.quota
    if not policy.scopes() and not policy.capacity:
        return None
    now = now or datetime.now(UTC)
    slot = int(now.timestamp() // (policy.every_minutes * 60))
    try:
        claim = q.state.claim("quota-scan", str(slot), lease_seconds=600)
    except RetryLater:
        return None
    if claim is None:
        return None
    try:
        report = scan(q, now=now)
    except Exception as exc:
        q.state.release(claim, reason=type(exc).__name__)
        raise
    q.state.complete(claim, outcome=f"{report.quotas} quotas, {report.above} above")
    return report


def run_follow() -> int:
    """The timer: follow every open increase request one step; how many changed. Each request
    is followed on its own (`follow_all`), its failures recorded on it; the timer raises only
    when there were open requests and not one could be followed (the Quota API or the tables
    down for all of them), after recording what it could, so the invocation shows failed."""
    report = follow_all(_q())
    if report.open and report.not_followed == report.open:
        raise RuntimeError(f"no open quota request could be followed ({report.not_followed}); "
                           "see the log and each request's message")
    return len(report.changed)
