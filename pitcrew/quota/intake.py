"""Quota alerts in: Azure's quota alert (a log search alert over quota usage, dimensions for
the quota name, region and subscription, Common Alert Schema), pitcrew's own
`<prefix>-quota-usage` alert, and Activity Log alerts on a failed deployment whose error is a
quota error (QuotaExceeded, OperationNotAllowed naming a quota). Each is recognised here,
enriched with the quota's latest scan and forecast, routed as kind `quota`, and may trigger
the automatic increase request (the one-open-request claim keeps it to one)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from pitcrew.events import AlertEvent, json_or_none
from pitcrew.notify.model import Notification, Severity
from pitcrew.quota.model import QuotaId, QuotaState, quota_scope, valid_scope
from pitcrew.quota.notices import RUNBOOK_ACTION, send, state_facts
from pitcrew.quota.ports import QuotaServices
from pitcrew.quota.requests import maybe_auto_request

QUOTA_ERRORS = ("QuotaExceeded", "OperationNotAllowed", "SkuQuotaExceeded",
                "ResourceQuotaExceeded", "InsufficientQuota")
_SUB = re.compile(r"/subscriptions/([0-9a-fA-F-]{36})", re.IGNORECASE)
_TYPE = re.compile(r"type\s*=~\s*'([a-z0-9.]+)/locations/usages'", re.IGNORECASE)
_PROVIDER_IN_ID = re.compile(r"/providers/([A-Za-z0-9]+\.[A-Za-z0-9.]+)/", re.IGNORECASE)
_QUOTA_NAME = re.compile(r"approved\s+(\S+?)\s+(?:Cores\s+)?quota", re.IGNORECASE)
_LOCATION = re.compile(r"Location:\s*([a-z0-9]+)", re.IGNORECASE)
_PROVIDERS = {"microsoft.compute": "Microsoft.Compute", "microsoft.network": "Microsoft.Network",
              "microsoft.storage": "Microsoft.Storage",
              "microsoft.machinelearningservices": "Microsoft.MachineLearningServices"}


@dataclass(frozen=True)
class QuotaAlert:
    quota: QuotaId
    source: str  # "quota-alert" or "deployment-failure"
    percent: float | None
    message: str


# Azure's quota names are short (`standardDSv3Family`, `PublicIPAddresses`); a dimension value
# longer than this is not one, and would reach Table rows and notification text.
MAX_DIMENSION_CHARS = 256


def _list(value: Any) -> list[Any]:
    """A Common Alert Schema array, or nothing: any sender may put any JSON there."""
    return value if isinstance(value, list) else []


def _number(value: Any) -> bool:
    """A finite JSON number (a bool is an int to Python; 1e400 parses as infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _dimension_text(value: Any) -> str | None:
    """A dimension's value as text: a string or a number, as short as a quota name can be."""
    if not (isinstance(value, str) or _number(value)):
        return None
    text = str(value)
    return text if len(text) <= MAX_DIMENSION_CHARS else None


def _dimensions(alert: AlertEvent) -> dict[str, str]:
    out: dict[str, str] = {}
    context = alert.alert_context if isinstance(alert.alert_context, dict) else {}
    condition = context.get("condition") if isinstance(context.get("condition"), dict) else {}
    for criterion in _list((condition or {}).get("allOf")):
        if not isinstance(criterion, dict):
            continue
        for dim in _list(criterion.get("dimensions")):
            if isinstance(dim, dict) and isinstance(dim.get("name"), str):
                value = _dimension_text(dim.get("value", ""))
                if value is not None:
                    out[dim["name"].lower()] = value
        if _number(criterion.get("metricValue")):
            out.setdefault("_value", str(criterion["metricValue"]))
        query = criterion.get("searchQuery")
        if isinstance(query, str) and (found := _TYPE.search(query)):
            out.setdefault("_type", found.group(1))
    return out


def _provider(raw: str) -> str:
    return _PROVIDERS.get(raw.lower(), raw)


def _subscription(alert: AlertEvent) -> str:
    for text in (alert.alert_id, *alert.target_ids):
        if found := _SUB.search(text or ""):
            return found.group(1)
    return ""


def parse_quota_alert(alert: AlertEvent) -> QuotaAlert | None:
    """The quota an alert is about, or None when it is not a quota alert."""
    dims = _dimensions(alert)
    name = dims.get("quotaname") or dims.get("quota")
    if name:
        subscription = dims.get("subscriptionid") or dims.get("subscription") or _subscription(
            alert)
        location = (dims.get("location") or "").lower()
        provider = dims.get("provider") or ""
        if not provider and dims.get("_type"):
            provider = dims["_type"]
        for item in _list(alert.essentials.get("configurationItems")):
            if not provider and isinstance(item, str) and (found := _PROVIDER_IN_ID.search(item)):
                provider = found.group(1)
        scope = quota_scope(subscription, _provider(provider or "Microsoft.Compute"), location)
        if not valid_scope(scope):
            return None
        percent = float(dims["_value"]) if "_value" in dims else None
        return QuotaAlert(QuotaId(scope, name), "quota-alert", percent, alert.description)
    return _deployment_failure(alert)


def _deployment_failure(alert: AlertEvent) -> QuotaAlert | None:
    if not str(alert.monitoring_service).lower().startswith("activity log"):
        return None
    context = alert.alert_context if isinstance(alert.alert_context, dict) else {}
    props = context.get("properties") if isinstance(context.get("properties"), dict) else {}
    text = " ".join(str(v) for v in (props or {}).values())[:20000]
    message = (props or {}).get("statusMessage")
    status = json_or_none(message) if isinstance(message, str) else None
    if status is not None:
        text += " " + json.dumps(status)
    if not any(code in text for code in QUOTA_ERRORS) or "quota" not in text.lower():
        return None
    name = _QUOTA_NAME.search(text)
    location = _LOCATION.search(text)
    operation = str(context.get("operationName") or "")
    provider = operation.split("/")[0] if "." in operation.split("/")[0] else "Microsoft.Compute"
    subscription = _subscription(alert) or (
        _SUB.search(str(context.get("resourceId") or "")) or [None, ""])[1]
    if not name or not location or not subscription or len(name.group(1)) > MAX_DIMENSION_CHARS:
        return None
    scope = quota_scope(subscription, _provider(provider), location.group(1).lower())
    if not valid_scope(scope):
        return None
    detail = re.sub(r"\s+", " ", text)[:600]
    return QuotaAlert(QuotaId(scope, name.group(1)), "deployment-failure", None, detail)


def is_quota_alert(alert: AlertEvent) -> bool:
    return parse_quota_alert(alert) is not None


def handle_quota_alert(alert: AlertEvent, services: Any) -> str:
    """Enrich with the latest scan and forecast, route as kind quota, maybe request."""
    q: QuotaServices = services.quota
    parsed = parse_quota_alert(alert)
    assert parsed is not None
    state = q.store.get(parsed.quota)
    notification = _notification(alert, parsed, state)
    dispatch = send(q, notification, action="notify.quota.alert", target=parsed.quota.id,
                    details={"rule": alert.rule, "condition": alert.condition,
                             "source": parsed.source})
    detail = dispatch.detail
    if state is not None and alert.condition == "Fired" and state.level != "ok":
        outcome = maybe_auto_request(q, state)
        if outcome is not None:
            detail += f"; increase request {outcome.request.status}"
    return detail


def _notification(alert: AlertEvent, parsed: QuotaAlert, state: QuotaState | None
                  ) -> Notification:
    quota = parsed.quota
    resolved = alert.condition == "Resolved"
    facts = state_facts(state) if state is not None else {**quota.labels(), "scanned": "not yet"}
    facts.update({"rule": alert.rule, "alertSource": parsed.source,
                  "condition": alert.condition})
    if parsed.percent is not None:
        facts["alertPercent"] = f"{parsed.percent:g}"
    if parsed.source == "deployment-failure":
        facts["deploymentError"] = parsed.message
    severity: Severity = "info" if resolved else (
        "critical" if parsed.source == "deployment-failure" or alert.severity in ("Sev0", "Sev1")
        else "warning")
    forecast = ""
    if state is not None and state.days_to_exhaustion is not None:
        forecast = f"; exhausted in {state.days_to_exhaustion:.1f} days at the current trend"
    what = f"{quota.name} in {quota.location}"
    title = (f"[{alert.condition}] deployment failed on quota {what}"
             if parsed.source == "deployment-failure" else f"[{alert.condition}] quota {what}")
    summary = (f"{alert.description or alert.rule}"
               + (f" ({state.percent:g} % at the last scan{forecast})" if state else ""))
    return Notification(
        id=f"quota-alert:{alert.id}", dedup_key=f"quota:{quota.id}", kind="quota",
        severity=severity, status="resolved" if resolved else "firing", title=title,
        summary=summary, correlation_id=alert.alert_id, facts=facts, actions=(RUNBOOK_ACTION,))
