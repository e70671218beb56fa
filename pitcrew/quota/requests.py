"""Increase requests: plan the new limit, claim the quota's one open request, submit through
the Quota API, follow the status to the end, notify and audit each change.

new limit = max(usage x headroom, current + step), at most the policy's max_limit. Exactly one
open request per quota: the RequestStore's open row is inserted only if absent, so concurrent
scans, alerts and operators never double-request. Automatic requests are made at most once per
alert episode (a StateStore claim), only for adjustable quotas, only when the policy allows
them, PITCREW_QUOTA_AUTO_INCREASE is true and the policy's mode is `act`; `mode: plan` and
dry runs show the request without sending it. A quota that cannot be adjusted, or a request
that fails or is escalated, gets a notification with a support-request text ready to paste.
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
from pitcrew.errors import Conflict, RetryLater
from pitcrew.quota.model import IncreaseRequest, QuotaRefused, QuotaState
from pitcrew.quota.notices import request_notification, send, support_text
from pitcrew.quota.policy import AutoIncrease
from pitcrew.quota.ports import QuotaServices

log = logging.getLogger(__name__)
AUTO_SETTING = "PITCREW_QUOTA_AUTO_INCREASE"
NEEDS_SUPPORT = frozenset({"Failed", "Escalated", "Invalid", "NotAdjustable"})
RESUBMIT_AFTER = timedelta(minutes=10)


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
        if not dry_run:
            # Recorded, so the notification's "See the requests" lists it.
            q.requests.record(request)
            _notify(q, request, support)
        return RequestOutcome(request, False, "not adjustable: open a support request", support)
    if dry_run:
        request.status = "Planned"
        _audit(q, request, "quota.request.planned", "planned")
        return RequestOutcome(request, False, "dry run: nothing sent")
    existing = q.requests.claim(request)
    if existing is not None:
        return RequestOutcome(existing, False, "a request for this quota is already open")
    _audit(q, request, "quota.request.claimed", "succeeded")
    return _submit(q, request)


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
    key = f"{quota.id}|{state.episode}"
    try:
        claim = q.state.claim("quota-auto", key)
    except RetryLater:
        return None  # another scan or alert is making this episode's request right now
    if claim is None:
        return None  # this episode's request was made (or planned) already
    try:
        digest = sha256(key.encode()).hexdigest()[:20]
        outcome = request_increase(
            q, state, new_limit or int(state.limit), actor=app_identity(),
            reason=f"{quota.name} is {state.level}: {'; '.join(state.reasons)}.",
            dry_run=plan_only, automatic=True, request_id=digest)
    except Exception as exc:
        q.state.release(claim, reason=type(exc).__name__)
        raise
    q.state.complete(claim, outcome=outcome.detail)
    return outcome


def follow(q: QuotaServices, *, now: datetime | None = None) -> list[RequestOutcome]:
    """Follow every open request one step: poll its status, and notify and audit a change."""
    now = now or datetime.now(UTC)
    changed: list[RequestOutcome] = []
    for request in list(q.requests.open_requests()):
        try:
            outcome = _follow_one(q, request, now)
        except Conflict:
            continue  # another follower moved it
        if outcome is not None:
            changed.append(outcome)
    return changed


def _follow_one(q: QuotaServices, request: IncreaseRequest,
                now: datetime) -> RequestOutcome | None:
    if not request.azure_request:
        if now - request.updated > RESUBMIT_AFTER:
            # The submitter died between its claim and the Quota API's answer. Setting a
            # limit is idempotent, so submitting again is safe.
            return _submit(q, request)
        return None
    status = q.source.request_status(request.quota.scope, request.azure_request)
    limit_hours = q.policy.quota.follow_request_hours
    if status.status == request.status:
        if now - request.created > timedelta(hours=limit_hours):
            request.status = "Escalated"
            request.message = f"still {status.status} after {limit_hours:g} hours"
        else:
            return None
    else:
        request.status, request.message = status.status, status.message or request.message
    q.requests.update(request)
    support = _support(request)
    _audit(q, request, "quota.request.status",
           "failed" if request.status in NEEDS_SUPPORT else "succeeded")
    _notify(q, request, support)
    return RequestOutcome(request, False, request.status, support)
