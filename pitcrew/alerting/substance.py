"""What each Azure Monitor alert kind carries: the facts an on-call engineer needs, its links
(absolute https only) and the severity it really has.

The Common Alert Schema's `alertContext` differs per kind; each reader below takes what that
kind documents and tolerates what is missing or oddly typed (numbers as strings, JSON inside a
string, null). Service health and budget alerts arrive as Sev4 whatever they say; their
severity is taken from what they say instead: a service health incident from its type, level
and stage, a budget from how far spend (or the forecast) crossed the budget.

    metric            metric, namespace, operator, threshold, value, aggregation, dimensions
    log-search        query, result count / value, operator, threshold, dimensions, results link
    activity-log      operation, caller, status, level, resource
    service-health    title, tracking id, incident type, stage, regions, services, communication
    resource-health   current and previous state, cause, type, details
    budget            spend, budget, threshold, forecast, scope
    smart-detector    detector, summary, detected and normal values, occurrence
    prometheus        expression, value, rule group, labels, annotations (summary, runbook)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pitcrew.events import AlertEvent, json_or_none
from pitcrew.links import safe_link

AZURE_SEVERITIES = ("Sev0", "Sev1", "Sev2", "Sev3", "Sev4")
FACT_LIMIT = 500
QUERY_LIMIT = 1000
MAX_CRITERIA = 5


@dataclass(frozen=True)
class Substance:
    kind: str
    severity: str
    """The effective Azure severity, Sev0 (critical) to Sev4 (verbose)."""
    facts: dict[str, str] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()
    headline: str | None = None
    """A title the alert itself gives (a service health incident's), if any."""


def alert_substance(alert: AlertEvent) -> Substance:
    kind = alert_kind(alert)
    reader = _READERS.get(kind, _unknown)
    context = alert.alert_context if isinstance(alert.alert_context, Mapping) else {}
    return reader(alert, context)


def alert_kind(alert: AlertEvent) -> str:
    service = (alert.monitoring_service or "").strip().lower()
    context = alert.alert_context if isinstance(alert.alert_context, Mapping) else {}
    condition_type = str(context.get("conditionType") or "")
    if service == "servicehealth" or _get(context, "eventSource") == "ServiceHealth":
        return "service-health"
    if service == "resource health" or _get(context, "eventSource") == "ResourceHealth":
        return "resource-health"
    if service.startswith("activity log"):
        return "activity-log"
    if service in ("costalerts", "cost management", "budget") or str(
            _get(context, "AlertCategory") or "").lower() == "budgets":
        return "budget"
    if service == "smartdetector" or "smartdetector" in service.replace(" ", ""):
        return "smart-detector"
    if service == "prometheus" or "expression" in context:
        return "prometheus"
    if condition_type == "LogQueryCriteria" or "SearchQuery" in context or service in (
            "log alerts v2", "log analytics"):
        return "log-search"
    if "MetricCriteria" in condition_type or "DynamicThreshold" in condition_type or (
            alert.signal_type or "").lower() == "metric":
        return "metric"
    if service == "application insights":
        return "log-search"
    return "unknown"


# ------------------------------------------------------------------ readers


def _metric(alert: AlertEvent, context: Mapping[str, Any]) -> Substance:
    facts: dict[str, str] = {}
    for i, criterion in enumerate(_criteria(context)[:MAX_CRITERIA]):
        tag = "" if i == 0 else f" #{i + 1}"
        name = criterion.get("metricName") or "metric"
        facts[f"Metric{tag}"] = _join(name, criterion.get("metricNamespace"), sep=" in ")
        facts[f"Value{tag}"] = _text(criterion.get("metricValue"))
        facts[f"Criterion{tag}"] = _condition(criterion)
        dims = _dimensions(criterion.get("dimensions"))
        if dims:
            facts[f"Dimensions{tag}"] = dims
        if criterion.get("alertSensitivity"):
            facts[f"Sensitivity{tag}"] = _text(criterion["alertSensitivity"])
        if criterion.get("webTestName"):
            facts[f"Web test{tag}"] = _text(criterion["webTestName"])
    facts.update(_window(context))
    return Substance("metric", _sev(alert.severity), _clean(facts))


def _log_search(alert: AlertEvent, context: Mapping[str, Any]) -> Substance:
    facts: dict[str, str] = {}
    links: list[tuple[str, str]] = []
    criteria = _criteria(context)
    if criteria:  # Log Alerts V2
        for i, criterion in enumerate(criteria[:MAX_CRITERIA]):
            tag = "" if i == 0 else f" #{i + 1}"
            facts[f"Query{tag}"] = _text(criterion.get("searchQuery"), QUERY_LIMIT)
            measure = criterion.get("metricMeasureColumn")
            facts[f"{'Value' if measure else 'Result count'}{tag}"] = _join(
                _text(criterion.get("metricValue")), measure and f"({measure})")
            facts[f"Criterion{tag}"] = _condition(criterion)
            dims = _dimensions(criterion.get("dimensions"))
            if dims:
                facts[f"Dimensions{tag}"] = dims
            links += _links(criterion, ("linkToFilteredSearchResultsUI", "Open the filtered "
                                        "query results"),
                            ("linkToSearchResultsUI", "Open the query results"))
        facts.update(_window(context))
    else:  # Log Analytics / Application Insights (V1)
        facts["Query"] = _text(_get(context, "SearchQuery"), QUERY_LIMIT)
        facts["Result count"] = _text(_get(context, "ResultCount"))
        facts["Criterion"] = _join(_get(context, "Operator"), _get(context, "Threshold"))
        facts["Window"] = _join(_get(context, "SearchIntervalStartTimeUtc"),
                                _get(context, "SearchIntervalEndtimeUtc"), sep=" to ")
        links += _links(context, ("LinkToFilteredSearchResultsUI", "Open the filtered query "
                                  "results"), ("LinkToSearchResults", "Open the query results"))
    return Substance("log-search", _sev(alert.severity), _clean(facts), _unique(links))


def _activity_log(alert: AlertEvent, context: Mapping[str, Any]) -> Substance:
    facts = {
        "Operation": _text(_get(context, "operationName")),
        "Caller": _text(_get(context, "caller")),
        "Status": _join(_get(context, "status"), _get(context, "subStatus"), sep=" / "),
        "Level": _level(_get(context, "level")),
        "Event source": _text(_get(context, "eventSource")),
        "Resource": _text(_get(context, "resourceId") or _get(context, "resourceUri")),
        "Correlation id": _text(_get(context, "correlationId")),
        "Event time": _text(_get(context, "eventTimestamp")),
    }
    return Substance("activity-log", _sev(alert.severity), _clean(facts))


def _service_health(alert: AlertEvent, context: Mapping[str, Any]) -> Substance:
    props = _props(context)
    services, regions = _impacted(props.get("impactedServices"))
    if not services and props.get("service"):
        services = [str(props["service"])]
    if not regions and props.get("region"):
        regions = [str(props["region"])]
    incident_type = _text(props.get("incidentType"))
    stage = _text(props.get("stage"))
    facts = {
        "Title": _text(props.get("title") or props.get("defaultLanguageTitle")),
        "Tracking id": _text(props.get("trackingId")),
        "Incident type": incident_type,
        "Stage": stage,
        "Level": _level(_get(context, "level")),
        "Services": ", ".join(services),
        "Regions": ", ".join(regions),
        "Impact started": _text(props.get("impactStartTime")),
        "Impact mitigated": _text(props.get("impactMitigationTime")),
        "Communication": _strip_html(_text(props.get("communication")
                                           or props.get("defaultLanguageContent"), 100_000)),
    }
    links: list[tuple[str, str]] = []
    tracking = str(props.get("trackingId") or "")
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tracking):
        link = safe_link(f"https://app.azure.com/h/{tracking}")
        if link:
            links.append(("Open the issue in Service Health", link))
    severity = service_health_severity(incident_type, facts["Level"], stage, alert.severity)
    return Substance("service-health", severity, _clean(facts), tuple(links),
                     headline=facts["Title"] or None)


def service_health_severity(incident_type: str, level: str, stage: str, reported: str) -> str:
    """A service issue that is active is at least an error (Sev1), a critical one Sev0; an
    action the customer must take or a security advisory is a warning (Sev2) or worse;
    maintenance, information and resolved or RCA stages are informational."""
    kind, level, stage = incident_type.lower(), level.lower(), stage.lower()
    if stage in ("resolved", "rca", "complete", "canceled", "cancelled"):
        return "Sev3"
    if kind in ("incident", "serviceissue", "service issue"):
        return "Sev0" if level == "critical" else "Sev1"
    if kind in ("security", "securityadvisory", "security advisory"):
        return "Sev1" if level in ("critical", "error") else "Sev2"
    if kind in ("actionrequired", "action required"):
        return "Sev2"
    if kind == "maintenance":
        return "Sev2" if level in ("critical", "error", "warning") else "Sev3"
    if kind in ("information", "informational", "healthadvisory", "health advisory"):
        return "Sev3"
    by_level = {"critical": "Sev0", "error": "Sev1", "warning": "Sev2"}
    return by_level.get(level) or _sev(reported)


def _resource_health(alert: AlertEvent, context: Mapping[str, Any]) -> Substance:
    props = _props(context)
    current = _text(props.get("currentHealthStatus"))
    previous = _text(props.get("previousHealthStatus"))
    cause = _text(props.get("cause"))
    facts = {
        "Title": _text(props.get("title")),
        "Current state": current,
        "Previous state": previous,
        "Cause": cause,
        "Type": _text(props.get("type")),
        "Details": _text(props.get("details")),
        "Event time": _text(_get(context, "eventTimestamp")),
    }
    state = current.lower()
    user = cause.lower() == "userinitiated"
    if state == "unavailable":
        severity = "Sev2" if user else "Sev1"
    elif state == "degraded":
        severity = "Sev2"
    elif state == "available":
        severity = "Sev3"
    else:
        severity = _sev(alert.severity)
    return Substance("resource-health", severity, _clean(facts), headline=facts["Title"] or None)


def _budget(alert: AlertEvent, context: Mapping[str, Any]) -> Substance:
    data = context.get("AlertData") if isinstance(context.get("AlertData"), Mapping) else context
    assert isinstance(data, Mapping)
    unit = _text(data.get("Unit"))
    spent = _amount(data.get("SpentAmount"))
    budget = _amount(data.get("BudgetThreshold"))
    notify_at = _amount(data.get("NotificationThresholdAmount"))
    forecast = _amount(data.get("ForecastedTotalForPeriod") or data.get("ForecastedAmount"))
    threshold_type = _text(data.get("ThresholdType")) or "Actual"
    facts = {
        "Budget": _text(data.get("BudgetName")),
        "Spend": _money(data.get("SpentAmount"), unit),
        "Budget amount": _money(data.get("BudgetThreshold"), unit),
        "Threshold": _join(_money(data.get("NotificationThresholdAmount"), unit),
                           _percent(notify_at, budget) and f"({_percent(notify_at, budget)})"),
        "Threshold type": threshold_type,
        "Forecast": _money(data.get("ForecastedTotalForPeriod") or data.get("ForecastedAmount"),
                           unit),
        "Spend of budget": _percent(spent, budget),
        "Scope": _text(data.get("Scope")),
        "Period start": _text(data.get("BudgetStartDate")),
    }
    return Substance("budget", budget_severity(threshold_type, spent, budget, notify_at,
                                               forecast), _clean(facts),
                     headline=f"Budget {facts['Budget']}" if facts["Budget"] else None)


def budget_severity(threshold_type: str, spent: float | None, budget: float | None,
                    notify_at: float | None, forecast: float | None) -> str:
    """From the threshold crossed: actual spend over the budget is an error (Sev1), at 90% or
    more a warning (Sev2); a forecast over the budget a warning; any lower crossing info."""
    if not budget or budget <= 0:
        return "Sev3"
    forecasted = threshold_type.lower().startswith("forecast")
    level = (forecast if forecasted and forecast is not None else
             notify_at if forecasted else spent if spent is not None else notify_at)
    if level is None:
        return "Sev3"
    ratio = level / budget
    if forecasted:
        return "Sev2" if ratio >= 1.0 else "Sev3"
    if ratio >= 1.0:
        return "Sev1"
    return "Sev2" if ratio >= 0.9 else "Sev3"


def _smart_detector(alert: AlertEvent, context: Mapping[str, Any]) -> Substance:
    facts = {
        "Detector": _text(_get(context, "SmartDetectorName") or _get(context, "DetectorName")),
        "Summary": _text(_get(context, "DetectionSummary")),
        "Detected value": _text(_get(context, "DetectedValue")),
        "Normal value": _text(_get(context, "NormalValue")),
        "Occurrence": _text(_get(context, "FormattedOccurrence")),
        "Analysed": _text(_get(context, "AnalysisTimestamp")),
    }
    links = _links(context, ("ApplicationInsightsLink", "Open in Application Insights"),
                   ("DetectorLink", "Open the detection"))
    return Substance("smart-detector", _sev(alert.severity), _clean(facts), tuple(links))


def _prometheus(alert: AlertEvent, context: Mapping[str, Any]) -> Substance:
    labels = context.get("labels") if isinstance(context.get("labels"), Mapping) else {}
    notes = context.get("annotations") if isinstance(context.get("annotations"), Mapping) else {}
    assert isinstance(labels, Mapping) and isinstance(notes, Mapping)
    facts = {
        "Expression": _text(context.get("expression"), QUERY_LIMIT),
        "Value": _text(context.get("expressionValue")),
        "Rule group": _text(context.get("ruleGroup")),
        "For": _text(context.get("for")),
        "Interval": _text(context.get("interval")),
        "Labels": ", ".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Summary": _text(notes.get("summary")),
        "Description": _text(notes.get("description")),
    }
    links = _links(notes, ("runbook_url", "Follow the runbook"))
    return Substance("prometheus", _sev(alert.severity), _clean(facts), tuple(links))


def _unknown(alert: AlertEvent, context: Mapping[str, Any]) -> Substance:
    facts: dict[str, str] = {}
    for criterion in _criteria(context)[:MAX_CRITERIA]:
        facts[_text(criterion.get("metricName") or "Value")] = _join(
            _text(criterion.get("metricValue")), _condition(criterion) and
            f"({_condition(criterion)})")
    return Substance("unknown", _sev(alert.severity), _clean(facts))


_READERS: dict[str, Callable[[AlertEvent, Mapping[str, Any]], Substance]] = {
    "metric": _metric,
    "log-search": _log_search,
    "activity-log": _activity_log,
    "service-health": _service_health,
    "resource-health": _resource_health,
    "budget": _budget,
    "smart-detector": _smart_detector,
    "prometheus": _prometheus,
}


# ------------------------------------------------------------------ helpers


_EVENT_LEVELS = {"1": "Critical", "2": "Error", "3": "Warning", "4": "Informational",
                 "5": "Verbose"}


def _level(raw: Any) -> str:
    """An activity log level: a name, or the number some payloads carry (EventLevel)."""
    text = _text(raw)
    return _EVENT_LEVELS.get(text, text)


def _sev(value: str) -> str:
    return value if value in AZURE_SEVERITIES else "Sev3"


def _get(context: Mapping[str, Any], key: str) -> Any:
    """`key` of the context, or of its `properties`, in any case (the schemas disagree)."""
    for where in (context, context.get("properties")):
        if isinstance(where, Mapping):
            if key in where:
                return where[key]
            lowered = key.lower()
            for k, v in where.items():
                if isinstance(k, str) and k.lower() == lowered:
                    return v
    return None


def _props(context: Mapping[str, Any]) -> Mapping[str, Any]:
    props = context.get("properties")
    return props if isinstance(props, Mapping) else context


def _criteria(context: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    condition = context.get("condition")
    if not isinstance(condition, Mapping):
        return []
    criteria = condition.get("allOf")
    return [c for c in criteria if isinstance(c, Mapping)] if isinstance(criteria, list) else []


def _window(context: Mapping[str, Any]) -> dict[str, str]:
    condition = context.get("condition")
    if not isinstance(condition, Mapping):
        return {}
    return {
        "Window": _join(condition.get("windowStartTime"), condition.get("windowEndTime"),
                        sep=" to "),
        "Window size": _text(condition.get("windowSize")),
    }


def _condition(criterion: Mapping[str, Any]) -> str:
    return _join(criterion.get("timeAggregation"), criterion.get("operator"),
                 criterion.get("threshold"))


def _dimensions(raw: Any) -> str:
    if not isinstance(raw, list):
        return ""
    return _text(", ".join(f"{d.get('name')}={d.get('value')}" for d in raw
                           if isinstance(d, Mapping)))


def _impacted(raw: Any) -> tuple[list[str], list[str]]:
    """Services and regions from `impactedServices` (a JSON string in the payload, or a list)."""
    if isinstance(raw, str):
        raw = json_or_none(raw)
    services: list[str] = []
    regions: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping):
            continue
        name = item.get("ServiceName") or item.get("serviceName")
        if name and str(name) not in services:
            services.append(str(name))
        for region in item.get("ImpactedRegions") or item.get("impactedRegions") or []:
            label = region.get("RegionName") if isinstance(region, Mapping) else region
            if label and str(label) not in regions:
                regions.append(str(label))
    return services, regions


def _links(where: Mapping[str, Any], *keys: tuple[str, str]) -> list[tuple[str, str]]:
    out = []
    for key, label in keys:
        link = safe_link(_get(where, key))
        if link:
            out.append((label, link))
    return out


def _unique(links: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    out = []
    for label, url in links:
        if url not in seen:
            seen.add(url)
            out.append((label, url))
    return tuple(out)


def _amount(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        digits = re.sub(r"[^0-9.\-]", "", raw.replace(",", ""))
        try:
            return float(digits)
        except ValueError:
            return None
    return None


def _money(raw: Any, unit: str) -> str:
    text = _text(raw)
    if not text:
        return ""
    return text if not unit or unit in text else f"{text} {unit}"


def _percent(part: float | None, whole: float | None) -> str:
    if part is None or not whole:
        return ""
    return f"{part * 100 / whole:.0f}%"


def _strip_html(text: str) -> str:
    """Service health communications are HTML: the text of it, cut to the fact limit."""
    plain = re.sub(r"<[^>]{0,2000}>", " ", text)
    plain = plain.replace("&nbsp;", " ").replace("&amp;", "&").replace("&lt;", "<").replace(
        "&gt;", ">")
    return _text(" ".join(plain.split()))


def _text(value: Any, limit: int = FACT_LIMIT) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, Mapping | list):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join(*parts: Any, sep: str = " ") -> str:
    return sep.join(_text(p) for p in parts if p not in (None, "", False))


def _clean(facts: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in facts.items() if v}
