"""What each Common Alert Schema kind carries into its notification: every sample in
shared/samples plus synthetic payloads (shaped as Azure documents them) for the kinds without a
sample. Service health and budgets keep their real severity instead of Sev4/info."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pitcrew.alerting.substance import alert_kind, alert_substance, budget_severity
from pitcrew.events import parse_alert
from pitcrew.intake.handlers import alert_notification
from tests.conftest import SAMPLES

ALERT_SAMPLES = sorted(p for p in SAMPLES.glob("common-alert-*.json"))


def synthetic(service: str, signal: str, context: Any, *, severity: str = "Sev4",
              condition: str = "Fired") -> dict[str, Any]:
    base = json.loads((SAMPLES / "common-alert-metric.json").read_text())
    payload = copy.deepcopy(base)
    essentials = payload["data"]["essentials"]
    essentials.update(monitoringService=service, signalType=signal, severity=severity,
                      monitorCondition=condition, alertRule=f"{service.lower()}-rule")
    payload["data"]["alertContext"] = context
    payload["data"]["customProperties"] = None
    return payload


SERVICE_HEALTH = {
    "authorization": None, "channels": 1, "claims": None, "caller": None,
    "correlationId": "f3cf2430-1ee3-4158-8e35-7a1d615acfc7", "eventSource": 2,
    "eventTimestamp": "2026-11-21T10:00:00Z", "httpRequest": None,
    "eventDataId": "1b6c6c3f-e5ee-4b84-9bbf-b1b3ab9d9b6e", "level": 3,
    "operationName": "Microsoft.ServiceHealth/incident/action",
    "operationId": "1b6c6c3f-e5ee-4b84-9bbf-b1b3ab9d9b6e",
    "properties": {
        "title": "Azure Service Bus - East US - Degraded connectivity",
        "service": "Service Bus", "region": "East US",
        "communication": "<p><strong>Summary of impact</strong>: Starting at 09:40 UTC "
                         "customers may experience timeouts &amp; errors.</p>",
        "incidentType": "Incident", "trackingId": "VL1R-3T8", "impactStartTime":
        "2026-11-21T09:40:00Z", "impactMitigationTime": None,
        "impactedServices": "[{\"ImpactedRegions\":[{\"RegionName\":\"East US\"},"
                            "{\"RegionName\":\"East US 2\"}],\"ServiceName\":\"Service Bus\"}]",
        "defaultLanguageTitle": "Azure Service Bus - East US - Degraded connectivity",
        "stage": "Active", "communicationId": "11000070123456", "isHIR": "false",
        "version": "0.1.1",
    },
    "status": "Active", "subStatus": None, "submissionTimestamp": "2026-11-21T10:00:01Z",
    "ResourceType": None,
}

RESOURCE_HEALTH = {
    "channels": "Admin, Operation", "correlationId": "a1be61fd-37ur-ba05-b827-cb874708babf",
    "eventSource": "ResourceHealth", "eventTimestamp": "2026-11-21T11:00:00Z",
    "eventDataId": "21dc4f88-1e2a-45a2-a4b5-e8b0b5d2e3c9", "level": "Informational",
    "operationName": "Microsoft.Resourcehealth/healthevent/Activated/action",
    "operationId": "2b37e2d0-7bda-4de7-ur8c6-1447d02265b2",
    "properties": {
        "title": "This virtual machine is stopping and deallocating as requested",
        "details": "The VM is unavailable because a platform failure was detected.",
        "currentHealthStatus": "Unavailable", "previousHealthStatus": "Available",
        "type": "Downtime", "cause": "PlatformInitiated",
    },
    "status": "Active", "submissionTimestamp": "2026-11-21T11:00:01Z",
    "Activity Log Event Category": "ResourceHealth",
}

BUDGET = {
    "AlertCategory": "budgets",
    "AlertData": {
        "Scope": "/subscriptions/00000000-0000-0000-0000-000000000000/",
        "ThresholdType": "Actual", "BudgetType": "Cost", "BudgetThreshold": "$1,000.00",
        "NotificationThresholdAmount": "$900.00", "FiredDate": "2026-11-21T12:00:00Z",
        "BudgetName": "platform-monthly",
        "BudgetId": "/subscriptions/00000000-0000-0000-0000-000000000000/providers/"
                    "Microsoft.Consumption/budgets/platform-monthly",
        "BudgetStartDate": "2026-11-01", "BudgetCreator": "ops@example.com", "Unit": "USD",
        "SpentAmount": "$1,042.17",
    },
}

ACTIVITY_LOG = {
    "authorization": {"action": "Microsoft.Compute/virtualMachines/delete",
                      "scope": "/subscriptions/00000000-0000-0000-0000-000000000000"},
    "channels": "Operation", "claims": "{}", "caller": "alice@example.com",
    "correlationId": "6ac88262-43be-4adf-a11c-bd2179852898", "eventSource": "Administrative",
    "eventTimestamp": "2026-11-21T13:00:00Z", "eventDataId": "dd1c1e4c-7a43-4b5d-8c6f-0c5e6a0e2a0f",
    "level": "Informational", "operationName": "Microsoft.Compute/virtualMachines/delete",
    "operationId": "6ac88262-43be-4adf-a11c-bd2179852898",
    "status": "Succeeded", "subStatus": "", "submissionTimestamp": "2026-11-21T13:00:05Z",
}

SMART_DETECTOR = {
    "DetectionSummary": "A degradation in the dependency duration over the last 24 hours",
    "FormattedOccurrence": "Experiencing a degradation in dependency duration",
    "DetectedValue": "0.45 sec", "NormalValue": "0.15 sec (over the last 7 days)",
    "PresentationInsightEventRequest": "/subscriptions/.../query",
    "SmartDetectorId": "DependencyPerformanceDegradationDetector",
    "SmartDetectorName": "Dependency Performance Degradation Detector",
    "AnalysisTimestamp": "2026-11-21T14:00:00Z",
}

PROMETHEUS = {
    "interval": "PT1M", "expression": "sum(rate(http_requests_total{code=~\"5..\"}[5m])) > 5",
    "expressionValue": "7.2", "for": "PT5M", "ruleGroup": "/subscriptions/x/ruleGroups/api",
    "labels": {"alertname": "HighErrorRate", "cluster": "aks-prod"},
    "annotations": {"summary": "5xx rate above 5/s", "runbook_url": "javascript:alert(1)",
                    "description": "The API answers errors"},
}

LOG_V1 = {
    "SearchQuery": "Heartbeat | summarize count() by Computer", "SearchIntervalStartTimeUtc":
    "2026-11-21T09:00:00Z", "SearchIntervalEndtimeUtc": "2026-11-21T09:15:00Z",
    "ResultCount": 3, "LinkToSearchResults": "https://portal.azure.com/#Analytics",
    "LinkToFilteredSearchResultsUI": "http://insecure.example.com/results",
    "SearchIntervalDurationMin": "15", "Threshold": 0, "Operator": "Greater Than",
}


def notification_of(payload: dict[str, Any]):  # type: ignore[no-untyped-def]
    return alert_notification(parse_alert(json.dumps(payload)))


@pytest.mark.parametrize("path", ALERT_SAMPLES, ids=lambda p: p.name)
def test_every_sample_keeps_its_substance_and_only_https_links(path: Any) -> None:
    payload = json.loads(path.read_text())
    note = notification_of(payload)
    assert note.facts["Kind"] in ("metric", "log-search")
    assert note.facts.get("Criterion")
    assert note.facts.get("Value") or note.facts.get("Result count")
    for action in note.to_dict()["actions"]:
        assert "url" not in action or action["url"].startswith("https://")


def test_metric_sample() -> None:
    note = notification_of(json.loads((SAMPLES / "common-alert-metric.json").read_text()))
    assert note.facts["Metric"] == "DeadletteredMessages in Microsoft.ServiceBus/namespaces"
    assert note.facts["Value"] == "42"
    assert note.facts["Criterion"] == "Maximum GreaterThan 0"
    assert note.facts["Dimensions"] == "EntityName=orders"
    assert note.facts["Window size"] == "PT5M"
    assert note.severity == "warning" and note.facts["Severity"] == "Sev2"


def test_log_search_sample_has_query_value_and_results_link() -> None:
    note = notification_of(json.loads((SAMPLES / "common-alert-log-quota.json").read_text()))
    assert note.facts["Kind"] == "log-search"
    assert note.facts["Query"].startswith('arg("").QuotaResources')
    assert note.facts["Value"] == "87.5 (usagePercent)"
    assert "quotaName=standardDSv5Family" in note.facts["Dimensions"]
    assert ("Open the query results", "https://portal.azure.com/#blade/Microsoft_Azure_"
            "Monitoring_Logs/LogsBlade") in [(a.label, a.url) for a in note.actions]
    assert note.severity == "critical"


def test_service_health_keeps_title_tracking_regions_services_and_its_severity() -> None:
    payload = synthetic("ServiceHealth", "Activity Log", SERVICE_HEALTH)
    note = notification_of(payload)
    assert note.facts["Kind"] == "service-health"
    assert note.facts["Tracking id"] == "VL1R-3T8"
    assert note.facts["Regions"] == "East US, East US 2"
    assert note.facts["Services"] == "Service Bus"
    assert note.facts["Incident type"] == "Incident"
    assert "timeouts & errors" in note.facts["Communication"]
    assert "<p>" not in note.facts["Communication"]
    # It arrived as Sev4; an active service issue is an error, so it pages.
    assert note.facts["Severity"] == "Sev1" and note.facts["Reported severity"] == "Sev4"
    assert note.severity == "critical"
    assert note.facts["Level"] == "Warning"  # EventLevel 3, as the documented sample sends it
    assert "Azure Service Bus - East US" in note.title
    assert any(a.url == "https://app.azure.com/h/VL1R-3T8" for a in note.actions)


@pytest.mark.parametrize(("kind", "level", "stage", "expected"), [
    ("Incident", "Critical", "Active", "Sev0"), ("Incident", "Warning", "Active", "Sev1"),
    ("Incident", "Error", "Resolved", "Sev3"), ("Maintenance", "Informational", "Planned", "Sev3"),
    ("ActionRequired", "Warning", "Active", "Sev2"), ("Security", "Error", "Active", "Sev1"),
    ("Informational", "Informational", "Active", "Sev3"),
])
def test_service_health_severity(kind: str, level: str, stage: str, expected: str) -> None:
    context = copy.deepcopy(SERVICE_HEALTH)
    context.update(level=level, eventSource="ServiceHealth")
    context["properties"].update(incidentType=kind, stage=stage)
    assert alert_substance(parse_alert(json.dumps(
        synthetic("ServiceHealth", "Activity Log", context)))).severity == expected


def test_resource_health_current_previous_cause() -> None:
    note = notification_of(synthetic("Resource Health", "Activity Log", RESOURCE_HEALTH))
    assert note.facts["Kind"] == "resource-health"
    assert (note.facts["Current state"], note.facts["Previous state"]) == ("Unavailable",
                                                                           "Available")
    assert note.facts["Cause"] == "PlatformInitiated"
    assert note.facts["Severity"] == "Sev1" and note.severity == "critical"


def test_budget_keeps_spend_budget_threshold_and_severity() -> None:
    note = notification_of(synthetic("CostAlerts", "Log", BUDGET))
    assert note.facts["Kind"] == "budget"
    assert note.facts["Spend"] == "$1,042.17 USD"
    assert note.facts["Budget amount"] == "$1,000.00 USD"
    assert note.facts["Threshold"] == "$900.00 USD (90%)"
    assert note.facts["Spend of budget"] == "104%"
    # Spend crossed the budget: an error (Sev1), not the Sev4/info it arrived as.
    assert note.facts["Severity"] == "Sev1" and note.severity == "critical"


@pytest.mark.parametrize(("kind", "spent", "notify_at", "forecast", "expected"), [
    ("Actual", 500.0, 500.0, None, "Sev3"), ("Actual", 920.0, 900.0, None, "Sev2"),
    ("Actual", 1001.0, 1000.0, None, "Sev1"), ("Forecasted", 300.0, 1000.0, 1200.0, "Sev2"),
    ("Forecasted", 300.0, 800.0, 850.0, "Sev3"),
])
def test_budget_severity_from_the_threshold_crossed(
    kind: str, spent: float, notify_at: float, forecast: float | None, expected: str
) -> None:
    assert budget_severity(kind, spent, 1000.0, notify_at, forecast) == expected


def test_budget_forecast_fact() -> None:
    context = copy.deepcopy(BUDGET)
    context["AlertData"].update(ThresholdType="Forecasted", SpentAmount="$300",
                                ForecastedTotalForPeriod="$1,200", NotificationThresholdAmount=
                                "$1,000.00")
    note = notification_of(synthetic("CostAlerts", "Log", context))
    assert note.facts["Forecast"] == "$1,200 USD" and note.facts["Severity"] == "Sev2"


def test_activity_log_operation_caller_status() -> None:
    note = notification_of(synthetic("Activity Log - Administrative", "Activity Log",
                                     ACTIVITY_LOG, severity="Sev3"))
    assert note.facts["Kind"] == "activity-log"
    assert note.facts["Operation"] == "Microsoft.Compute/virtualMachines/delete"
    assert note.facts["Caller"] == "alice@example.com"
    assert note.facts["Status"] == "Succeeded"


def test_smart_detector_and_prometheus() -> None:
    smart = notification_of(synthetic("SmartDetector", "Log", SMART_DETECTOR, severity="Sev3"))
    assert smart.facts["Kind"] == "smart-detector"
    assert smart.facts["Detected value"] == "0.45 sec"
    assert smart.facts["Detector"] == "Dependency Performance Degradation Detector"
    prom = notification_of(synthetic("Prometheus", "Metric", PROMETHEUS, severity="Sev1"))
    assert prom.facts["Kind"] == "prometheus"
    assert prom.facts["Value"] == "7.2"
    assert prom.facts["Labels"] == "alertname=HighErrorRate, cluster=aks-prod"
    assert prom.facts["Summary"] == "5xx rate above 5/s"
    # The runbook annotation is javascript: and so is left out.
    assert all("javascript" not in (a.url or "") for a in prom.actions)


def test_log_search_v1_keeps_result_count_and_drops_http_links() -> None:
    note = notification_of(synthetic("Log Analytics", "Log", LOG_V1, severity="Sev2"))
    assert alert_kind(parse_alert(json.dumps(synthetic("Log Analytics", "Log", LOG_V1))))\
        == "log-search"
    assert note.facts["Result count"] == "3"
    urls = [a.url for a in note.actions if a.url]
    assert "https://portal.azure.com/#Analytics" in urls
    assert all(u.startswith("https://") for u in urls)


def test_hostile_context_never_raises() -> None:
    for context in (None, [], "x", {"condition": {"allOf": "no"}}, {"properties": [1]},
                    {"AlertCategory": "budgets", "AlertData": {"SpentAmount": "∞"}}):
        for service in ("ServiceHealth", "Resource Health", "CostAlerts", "Platform",
                        "Prometheus", "SmartDetector", "Log Alerts V2", "Activity Log - Policy"):
            note = notification_of(synthetic(service, "Metric", context))
            assert note.facts["Kind"]
