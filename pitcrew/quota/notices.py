"""What quota notifications say, and the one call that sends them (the alert pipeline's entry
point, `Notifier.send`) with the audit record of what became of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.links import docs_url, public_url
from pitcrew.notify.model import Action, Dispatch, Notification, Severity, Status
from pitcrew.quota.model import IncreaseRequest, QuotaId, QuotaState
from pitcrew.quota.ports import QuotaServices

# Every link a person gets is absolute https (as the other notices' runbooks): the runbook is an
# action, never a relative path in the facts.
RUNBOOK = docs_url("runbooks/quota-increase.md")
RUNBOOK_ACTION = Action("Follow the runbook (quota increase)", url=RUNBOOK)


def send(q: QuotaServices, notification: Notification, *, action: str, target: str,
         details: Mapping[str, Any]) -> Dispatch:
    dispatch = q.notifier.send(notification)
    q.audit.append(AuditRecord(
        actor=app_identity(), action=action, target=target,
        outcome=dispatch.outcome,  # type: ignore[arg-type]
        correlation_id=notification.correlation_id,
        details={**details, "notification": notification.id, **dispatch.to_dict()},
    ))
    return dispatch


def state_facts(state: QuotaState) -> dict[str, str]:
    facts = state.quota.labels()
    facts.update({
        "usage": _num(state.usage), "limit": _num(state.limit), "unit": state.unit,
        "percent": f"{state.percent:g}",
        "daysToExhaustion": "never (not growing)" if state.days_to_exhaustion is None
        else f"{state.days_to_exhaustion:.1f}",
        "trendPerDay": "unknown" if state.slope_per_day is None else f"{state.slope_per_day:+.2f}",
        "samples": str(len(state.series)),
        "adjustable": "yes" if state.adjustable else "no",
    })
    return facts


def level_notification(state: QuotaState, previous: str) -> Notification:
    """A quota crossed into a level (or back to ok): one per (quota, episode, level)."""
    quota = state.quota
    resolved = state.level == "ok"
    severity: Severity = "info" if resolved else ("critical" if state.level == "critical"
                                                   else "warning")
    status: Status = "resolved" if resolved else "firing"
    what = f"{quota.name} in {quota.location or quota.scope}"
    if resolved:
        title = f"[resolved] quota {what} is back below its thresholds"
        summary = f"{what}: {_num(state.usage)} of {_num(state.limit)} ({state.percent:g} %)."
    else:
        title = f"[{state.level}] quota {what} at {state.percent:g} %"
        summary = "; ".join(state.reasons) or f"{state.percent:g} % used"
    facts = state_facts(state)
    facts["level"] = state.level
    facts["previousLevel"] = previous
    return Notification(
        id=f"quota:{quota.id}:{state.episode}:{state.level}",
        dedup_key=f"quota:{quota.id}:{state.episode}",
        kind="quota", severity=severity, status=status, title=title, summary=summary,
        correlation_id=f"quota:{quota.id}", facts=facts,
        actions=(Action("See the quota", url=public_url("api/quota", name=quota.name),
                        command=f"pitcrew quota --name {quota.name}"), RUNBOOK_ACTION),
    )


def support_text(quota: QuotaId, *, current: float, usage: float, wanted: int | None,
                 why: str) -> str:
    """A support request ready to paste: what, where, current, wanted, why."""
    lines = [
        f"What: increase the quota {quota.name}.",
        f"Where: subscription {quota.subscription or '?'}, provider {quota.provider or '?'}, "
        f"location {quota.location or '?'} (scope {quota.scope}).",
        f"Current: limit {_num(current)}, usage {_num(usage)}.",
        f"Wanted: limit {wanted}." if wanted else "Wanted: a limit that covers the growth.",
        f"Why: {why}",
    ]
    return "\n".join(lines)


def request_notification(request: IncreaseRequest, *, support: str | None = None) -> Notification:
    """Each change of an increase request, one notification per (request, status)."""
    quota = request.quota
    status = request.status
    severity: Severity = ("warning" if status in ("Failed", "Escalated", "Invalid", "Canceled",
                                                  "NotAdjustable") else "info")
    facts = quota.labels()
    facts.update({"request": request.request_id, "status": status,
                  "currentLimit": _num(request.current_limit), "usage": _num(request.usage),
                  "newLimit": str(request.new_limit), "actor": request.actor,
                  "azureRequest": request.azure_request or "-"})
    if request.message:
        facts["message"] = request.message[:500]
    if support:
        facts["supportRequest"] = support
    verb = {"Submitting": "requested", "Accepted": "accepted", "InProgress": "in progress",
            "Succeeded": "granted", "Failed": "failed", "Escalated": "escalated to support",
            "Invalid": "refused as invalid", "Canceled": "canceled", "Planned": "planned",
            "NotAdjustable": "cannot be adjusted by request"}.get(status, status)
    title = (f"quota increase for {quota.name} in {quota.location or quota.scope} {verb}: "
             f"{_num(request.current_limit)} -> {request.new_limit}")
    summary = request.reason if not support else (
        f"{request.reason} Open a support request with the text in supportRequest.")
    return Notification(
        id=f"quota-request:{request.request_id}:{status}",
        dedup_key=f"quota-request:{request.request_id}",
        kind="quota", severity=severity, status="info", title=title, summary=summary,
        correlation_id=f"quota:{quota.id}", facts=facts,
        actions=(Action("See the requests", url=public_url("api/quota/requests"),
                        command="pitcrew quota requests"), RUNBOOK_ACTION),
    )


def _num(value: float) -> str:
    return f"{value:g}"
