"""Increase requests: plan the new limit, claim the quota's one open request, submit through
the Quota API, follow the status to the end, notify and audit each change.

new limit = max(usage x headroom, current + step), at most the policy's max_limit. Exactly one
open request per quota: the RequestStore's open row is inserted only if absent, so concurrent
scans, alerts and operators never double-request. Automatic requests are made at most once per
alert episode (a StateStore claim), only for adjustable quotas, only when the policy allows
them, PITCREW_QUOTA_AUTO_INCREASE is true and the policy's mode is `act`; `mode: plan` and
dry runs show the request without sending it. A quota that cannot be adjusted, or a request
that fails or is escalated, gets a notification with a support-request text ready to paste;
a quota that cannot be adjusted is recorded and notified once per alert episode, whoever asks.
Each open request is followed on its own: a status that cannot be read is counted on the
request and read again, and a request Azure no longer knows (404) or that stays unreadable
ends Failed or Escalated, releasing the quota (docs/quota.md).
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.errors import Conflict, RetryLater, error_summary
from pitcrew.quota.model import IncreaseRequest, QuotaRefused, QuotaState, RequestGone
from pitcrew.quota.notices import request_notification, send, support_text
from pitcrew.quota.policy import AutoIncrease
from pitcrew.quota.ports import QuotaServices

log = logging.getLogger(__name__)
AUTO_SETTING = "PITCREW_QUOTA_AUTO_INCREASE"
NEEDS_SUPPORT = frozenset({"Failed", "Escalated", "Invalid", "NotAdjustable"})
RESUBMIT_AFTER = timedelta(minutes=10)
# A request whose status cannot be read this many runs in a row (the timer runs every 5
# minutes: 2 hours) is escalated to a person; Azure's 404 ends it at once.
MAX_READ_FAILURES = 24
NOT_ADJUSTABLE_SCOPE = "quota-not-adjustable"
RECORD_LOOKUP = 50


def auto_switch() -> bool:
    """The app setting infra sets alongside the Quota Request Operator role."""
    return os.environ.get(AUTO_SETTING, "").strip().lower() in ("1", "true", "yes")


def planned_limit(usage: float, limit: float, rule: AutoIncrease) -> int | None:
    """max(usage x headroom, current + step), capped; None when the cap allows no increase."""
    wanted = max(math.ceil(usage * rule.headroom), math.ceil(limit + rule.step))
    if rule.max_limit is not None:
        wanted = min(wanted, rule.max_limit)
    return wanted if wanted > limit else None


@dataclass
class RequestOutcome:
    request: IncreaseRequest
    sent: bool
    detail: str
    support: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {**self.request.to_dict(), "sent": self.sent, "detail": self.detail}
        if self.support:
            out["supportRequest"] = self.support
        return out


def _why(state: QuotaState, reason: str) -> str:
    trend = ""
    if state.days_to_exhaustion is not None and state.slope_per_day:
        trend = (f" Usage grows {state.slope_per_day:.2f}/day and reaches the limit in "
                 f"{state.days_to_exhaustion:.1f} days.")
    return f"{reason}{trend}"


def _audit(q: QuotaServices, request: IncreaseRequest, action: str, outcome: str,
           **details: Any) -> None:
    q.audit.append(AuditRecord(
        actor=request.actor if not request.automatic else app_identity(), action=action,
        target=request.quota.id, outcome=outcome,  # type: ignore[arg-type]
        correlation_id=request.request_id,
        details={**request.to_dict(), **details},
    ))


def request_increase(q: QuotaServices, state: QuotaState, new_limit: int, *, actor: str,
                     reason: str, dry_run: bool, automatic: bool = False,
                     request_id: str | None = None) -> RequestOutcome:
    """Ask for `new_limit` for the quota `state` describes (its latest scan)."""
    quota = state.quota
    request = IncreaseRequest(
        request_id=request_id or uuid.uuid4().hex[:20], quota=quota,
        current_limit=state.limit, usage=state.usage, new_limit=new_limit,
        reason=_why(state, reason), actor=actor, automatic=automatic)
    if not state.adjustable or quota.kind != "quota":
        request.status = "NotAdjustable"
        support = support_text(quota, current=state.limit, usage=state.usage, wanted=new_limit,
                               why=request.reason + " The Quota API cannot adjust this quota.")
        if dry_run:
            _audit(q, request, "quota.request.planned", "planned")
            return RequestOutcome(request, False, "not adjustable: open a support request",
                                  support)
        return _not_adjustable(q, state, request, support)
    if dry_run:
        request.status = "Planned"
        _audit(q, request, "quota.request.planned", "planned")
        return RequestOutcome(request, False, "dry run: nothing sent")
    existing = q.requests.claim(request)
    if existing is not None:
        return RequestOutcome(existing, False, "a request for this quota is already open")
    _audit(q, request, "quota.request.claimed", "succeeded")
    return _submit(q, request)


def _episode_key(state: QuotaState) -> str:
    """One alert episode of one quota: the automatic request's claim, and the one record of
    a quota the Quota API cannot adjust."""
    return f"{state.quota.id}|{state.episode}"


def _episode_request_id(key: str) -> str:
    return sha256(key.encode()).hexdigest()[:20]


def _not_adjustable(q: QuotaServices, state: QuotaState, request: IncreaseRequest,
                    support: str) -> RequestOutcome:
    """Record and notify "cannot be adjusted" once per quota and alert episode, whoever asks
    (the automatic path, operators, two at once): the same StateStore claim per episode as the
    automatic request, and the same id (the episode's digest), so a repeat names the record
    that stands. Every ask is audited."""
    key = _episode_key(state)
    request.request_id = _episode_request_id(key)
    try:
        claim = q.state.claim(NOT_ADJUSTABLE_SCOPE, key)
    except RetryLater:
        claim, busy = None, True  # another caller is recording it right now
    else:
        busy = False
    if claim is None:
        existing = _recorded(q, request) or request
        detail = (f"not adjustable: already {'being ' if busy else ''}recorded as request "
                  f"{existing.request_id}; open a support request")
        _audit(q, request, "quota.request.not_adjustable", "skipped",
               recordedAs=existing.request_id)
        return RequestOutcome(existing, False, detail, support)
    try:
        # Recorded, so the notification's "See the requests" lists it.
        q.requests.record(request)
        _audit(q, request, "quota.request.not_adjustable", "failed")
        _notify(q, request, support)
    except Exception as exc:
        q.state.release(claim, reason=type(exc).__name__)
        raise
    q.state.complete(claim, outcome=request.request_id)
    return RequestOutcome(request, False, "not adjustable: open a support request", support)


def _recorded(q: QuotaServices, request: IncreaseRequest) -> IncreaseRequest | None:
    """The record that stands for this episode, among the newest NotAdjustable records."""
    page = q.requests.page(limit=RECORD_LOOKUP, status="NotAdjustable")
    return next((r for r in page.items if r.request_id == request.request_id), None)


def _submit(q: QuotaServices, request: IncreaseRequest) -> RequestOutcome:
    try:
        submitted = q.source.submit(request.quota, request.new_limit)
    except QuotaRefused as exc:
        request.status, request.message = "Failed", f"{exc.code}: {exc.message}"[:2000]
    else:
        request.status = submitted.status or "Accepted"
        request.azure_request = submitted.azure_request
        request.message = submitted.message
    q.requests.update(request)
    support = _support(request)
    _audit(q, request, "quota.request.submitted",
           "failed" if request.status in NEEDS_SUPPORT else "succeeded")
    _notify(q, request, support)
    return RequestOutcome(request, request.status not in NEEDS_SUPPORT, request.status, support)


def _support(request: IncreaseRequest) -> str | None:
    if request.status not in NEEDS_SUPPORT:
        return None
    return support_text(request.quota, current=request.current_limit, usage=request.usage,
                        wanted=request.new_limit,
                        why=f"{request.reason} The automatic request ended {request.status}"
                        + (f" ({request.message})" if request.message else "") + ".")


def _notify(q: QuotaServices, request: IncreaseRequest, support: str | None) -> None:
    send(q, request_notification(request, support=support), action="notify.quota.request",
         target=request.quota.id, details={"request": request.request_id,
                                           "status": request.status})


def maybe_auto_request(q: QuotaServices, state: QuotaState) -> RequestOutcome | None:
    """The automatic request for a quota at its trigger level: once per alert episode."""
    quota = state.quota
    policy = q.policy.quota
    rule = policy.auto_increase_for(quota)
    if not rule.enabled or policy.ignored(quota) or quota.kind != "quota":
        return None
    trigger = ("warning", "critical") if rule.when == "warning" else ("critical",)
    if state.level not in trigger:
        return None
    new_limit = planned_limit(state.usage, state.limit, rule)
    if new_limit is None and state.adjustable:
        log.info("quota %s is at its policy cap; no automatic request", quota.id)
        return None
    plan_only = q.policy.mode == "plan" or not auto_switch()
    key = _episode_key(state)
    try:
        claim = q.state.claim("quota-auto", key)
    except RetryLater:
        return None  # another scan or alert is making this episode's request right now
    if claim is None:
        return None  # this episode's request was made (or planned) already
    try:
        outcome = request_increase(
            q, state, new_limit or int(state.limit), actor=app_identity(),
            reason=f"{quota.name} is {state.level}: {'; '.join(state.reasons)}.",
            dry_run=plan_only, automatic=True, request_id=_episode_request_id(key))
    except Exception as exc:
        q.state.release(claim, reason=type(exc).__name__)
        raise
    q.state.complete(claim, outcome=outcome.detail)
    return outcome


@dataclass
class FollowReport:
    """One run of the follower: what changed, how many requests were open, and how many of
    them could not be followed (status unreadable and counted, or an error)."""

    changed: list[RequestOutcome]
    open: int = 0
    not_followed: int = 0


def follow(q: QuotaServices, *, now: datetime | None = None) -> list[RequestOutcome]:
    """Follow every open request one step: poll its status, and notify and audit a change."""
    return follow_all(q, now=now).changed


def follow_all(q: QuotaServices, *, now: datetime | None = None) -> FollowReport:
    """`follow`, with the counts. Each request on its own: one whose status cannot be read (or
    whose step fails) is logged, counted on its record and read again next run, or ended (see
    `_unreadable`); the others go on regardless. Never raises for one request."""
    now = now or datetime.now(UTC)
    report = FollowReport(changed=[])
    requests = list(q.requests.open_requests())
    report.open = len(requests)
    for request in requests:
        try:
            outcome = _follow_one(q, request, now)
        except Conflict:
            continue  # another follower moved it
        except _NotFollowed:
            report.not_followed += 1
            continue
        except Exception as exc:  # one request must never stop the others
            log.error("following quota request %s (%s) failed: %s", request.request_id,
                      request.quota.id, type(exc).__name__, exc_info=exc)
            report.not_followed += 1
            continue
        if outcome is not None:
            report.changed.append(outcome)
    if report.not_followed:
        log.warning("quota requests: %d of %d open could not be followed this run",
                    report.not_followed, report.open)
    return report


class _NotFollowed(Exception):
    """The status could not be read; the failure is recorded and counted (not raised on)."""


def _follow_one(q: QuotaServices, request: IncreaseRequest,
                now: datetime) -> RequestOutcome | None:
    if not request.azure_request:
        if now - request.updated > RESUBMIT_AFTER:
            # The submitter died between its claim and the Quota API's answer. Setting a
            # limit is idempotent, so submitting again is safe.
            return _submit(q, request)
        return None
    limit_hours = q.policy.quota.follow_request_hours
    overdue = now - request.created > timedelta(hours=limit_hours)
    try:
        status = q.source.request_status(request.quota.scope, request.azure_request)
    except Exception as exc:
        return _unreadable(q, request, exc, overdue=overdue, limit_hours=limit_hours)
    failing = request.read_failures > 0
    if status.status == request.status:
        if overdue:
            request.status = "Escalated"
            request.message = f"still {status.status} after {limit_hours:g} hours"
        elif failing:
            # Readable again: the count of failed reads starts over. Nothing to tell anyone.
            request.message = status.message
            request.read_failures = 0
            q.requests.update(request)
            log.info("quota request %s: status readable again (%s)", request.request_id,
                     status.status)
            return None
        else:
            return None
    else:
        request.status = status.status
        request.message = status.message or ("" if failing else request.message)
        request.read_failures = 0
    return _changed(q, request)


def _changed(q: QuotaServices, request: IncreaseRequest) -> RequestOutcome:
    q.requests.update(request)
    support = _support(request)
    _audit(q, request, "quota.request.status",
           "failed" if request.status in NEEDS_SUPPORT else "succeeded")
    _notify(q, request, support)
    return RequestOutcome(request, False, request.status, support)


def _unreadable(q: QuotaServices, request: IncreaseRequest, exc: Exception, *, overdue: bool,
                limit_hours: float) -> RequestOutcome:
    """The status of one request could not be read.

    Azure no longer knows the request (404): it ends Failed at once. Anything else (a 5xx, a
    throttle, a connection error, a lost role) is counted on the request (`read_failures`) and
    logged as a warning; the request stays open and is read again next run, until MAX_READ_FAILURES
    in a row or `follow_request_hours` after it was made, when it ends Escalated. Either end
    releases the quota for a new request and is notified (with the support text) and audited
    like every other end."""
    reason = error_summary(exc)
    attempt = request.read_failures + 1
    request.read_failures = attempt
    if _gone(exc):
        request.status = "Failed"
        request.message = (f"the Quota API no longer knows request {request.azure_request} "
                           f"({reason}); check the limit and ask again if it is still needed")
    elif overdue or attempt >= MAX_READ_FAILURES:
        request.status = "Escalated"
        request.message = (f"status unreadable {attempt} times in a row"
                           + (f", open for more than {limit_hours:g} hours" if overdue else "")
                           + f"; last error: {reason}")
    else:
        log.warning("quota request %s (%s): status unreadable, attempt %d of %d: %s; "
                    "read again next run", request.request_id, request.quota.id, attempt,
                    MAX_READ_FAILURES, reason)
        request.message = f"status unreadable, attempt {attempt} of {MAX_READ_FAILURES}: {reason}"
        q.requests.update(request)  # Conflict: another follower got there first
        raise _NotFollowed(request.request_id)
    log.warning("quota request %s (%s) ended %s: %s", request.request_id, request.quota.id,
                request.status, request.message)
    return _changed(q, request)


def _gone(exc: Exception) -> bool:
    """The adapter says so (RequestGone), or an HTTP error of any client answered 404."""
    return isinstance(exc, RequestGone) or getattr(exc, "status_code", None) == 404
