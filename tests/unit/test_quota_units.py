"""Quota units: the increase formula, thresholds, policy validation, alert recognition and the
CLI's ordering."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pitcrew.errors import InvalidInput
from pitcrew.events import parse_alert
from pitcrew.quota.intake import parse_quota_alert
from pitcrew.quota.model import QuotaId, QuotaState
from pitcrew.quota.policy import AutoIncrease, QuotaPolicy, Thresholds
from pitcrew.quota.requests import planned_limit
from pitcrew.quota.scan import evaluate
from tests.conftest import SAMPLES

SCOPE = ("subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Compute/"
         "locations/eastus")


def test_new_limit_is_headroom_or_step_capped() -> None:
    rule = AutoIncrease(enabled=True, headroom=1.5, step=10, max_limit=120)
    assert planned_limit(60, 100, rule) == 110  # current + step wins
    assert planned_limit(90, 100, rule) == 120  # 135 capped at 120
    assert planned_limit(90, 120, rule) is None  # at the cap: nothing to ask
    assert planned_limit(90, 100, AutoIncrease(headroom=2, step=1)) == 180


def test_thresholds_percent_and_days() -> None:
    t = Thresholds()
    state = QuotaState(QuotaId(SCOPE, "q"), usage=50, limit=100)
    assert evaluate(state, t)[0] == "ok"
    state.days_to_exhaustion = 10
    assert evaluate(state, t)[0] == "warning"
    state.days_to_exhaustion = 2
    level, reasons = evaluate(state, t)
    assert level == "critical" and "exhausted within 2.0 days" in reasons[0]
    state.days_to_exhaustion, state.usage = None, 96
    assert evaluate(state, t)[0] == "critical"


def test_policy_overrides_and_validation() -> None:
    policy = QuotaPolicy.model_validate({
        "subscriptions": ["00000000-0000-0000-0000-000000000000"], "locations": ["eastus"],
        "rules": [{"match": {"name": "standard*Family"}, "thresholds": {"warning_percent": 60}}]})
    assert policy.scopes() == [SCOPE]
    assert policy.thresholds_for(QuotaId(SCOPE, "standardDSv5Family")).warning_percent == 60
    assert policy.thresholds_for(QuotaId(SCOPE, "cores")).warning_percent == 80
    with pytest.raises(ValueError, match=r"rules\[0\]\.thresholds"):
        QuotaPolicy.model_validate({"rules": [{"match": {}, "thresholds":
                                               {"critical_percent": 50}}]})
    with pytest.raises(ValueError, match="subscription id"):
        QuotaPolicy.model_validate({"subscriptions": ["nope"]})


def test_quota_id_parse() -> None:
    quota = QuotaId.parse(f"/{SCOPE}/standardDSv5Family")
    assert quota.labels() == {"scope": SCOPE, "subscription": SCOPE.split("/")[1],
                              "provider": "Microsoft.Compute", "location": "eastus",
                              "quota": "standardDSv5Family"}
    for bad in ("x/y", f"{SCOPE}/", f"{SCOPE}/a b", "subscriptions/x/providers/P.Q/locations/e/n"):
        with pytest.raises(InvalidInput):
            QuotaId.parse(bad)


def test_azure_quota_alert_sample_is_recognised() -> None:
    alert = parse_alert((SAMPLES / "common-alert-log-quota.json").read_bytes())
    parsed = parse_quota_alert(alert)
    assert parsed is not None
    assert parsed.quota == QuotaId(SCOPE, "standardDSv5Family") and parsed.percent == 87.5


def test_metric_alert_is_not_a_quota_alert() -> None:
    alert = parse_alert((SAMPLES / "common-alert-metric.json").read_bytes())
    assert parse_quota_alert(alert) is None



def _quota_sample() -> dict[str, Any]:
    return json.loads((SAMPLES / "common-alert-log-quota.json").read_bytes())


def _shapes() -> list[tuple[str, object]]:
    """Common Alert Schema fields of the quota sample given shapes Azure never sends."""
    cases: list[tuple[str, object]] = []
    for value in (True, -1, 1.5, "x", {"a": 1}, None):
        cases += [("allOf", value), ("dimensions", value), ("configurationItems", value)]
    cases += [("metricValue", True), ("metricValue", False), ("metricValue", "87.5"),
              ("quotaName", "x" * 100_000), ("quotaName", list(range(10_000))),
              ("quotaName", True)]
    return cases


@pytest.mark.parametrize(("where", "value"), _shapes())
def test_an_oddly_shaped_alert_is_a_quota_alert_or_not_never_an_exception(
        where: str, value: object) -> None:
    raw = _quota_sample()
    criterion = raw["data"]["alertContext"]["condition"]["allOf"][0]
    if where == "allOf":
        raw["data"]["alertContext"]["condition"]["allOf"] = value
    elif where == "dimensions":
        criterion["dimensions"] = value
    elif where == "configurationItems":
        raw["data"]["essentials"]["configurationItems"] = value
    elif where == "metricValue":
        criterion["metricValue"] = value
    else:
        (dim,) = [d for d in criterion["dimensions"] if d["name"].lower() == "quotaname"]
        dim["value"] = value
    parsed = parse_quota_alert(parse_alert(json.dumps(raw).encode()))
    if where == "quotaName":  # no quota Azure could name: an ordinary alert
        assert parsed is None
    elif parsed is not None:
        assert len(parsed.quota.name) <= 256
        assert parsed.percent is None or isinstance(parsed.percent, float)


def _activity_log(message: str) -> bytes:
    status = {"status": "Failed", "error": {"code": "ResourceDeploymentFailure", "details": [
        {"code": "QuotaExceeded", "message": message}]}}
    return json.dumps({"schemaId": "azureMonitorCommonAlertSchema", "data": {
        "essentials": {
            "alertId": "/subscriptions/00000000-0000-0000-0000-000000000000/providers/"
                       "Microsoft.AlertsManagement/alerts/1234",
            "alertRule": "deployment-failures", "severity": "Sev2", "signalType": "Activity Log",
            "monitorCondition": "Fired", "monitoringService": "Activity Log - Administrative",
            "alertTargetIDs": ["/subscriptions/00000000-0000-0000-0000-000000000000/"
                               "resourcegroups/app/providers/microsoft.compute/"
                               "virtualmachines/vm1"],
            "firedDateTime": "2026-11-21T09:15:00Z", "description": "",
            "essentialsVersion": "1.0", "alertContextVersion": "1.0"},
        "alertContext": {"operationName": "Microsoft.Compute/virtualMachines/write",
                         "status": "Failed",
                         "properties": {"statusCode": "Conflict",
                                        "statusMessage": json.dumps(status)}}}}).encode()


def test_quota_deployment_failure_is_recognised() -> None:
    message = ("Operation could not be completed as it results in exceeding approved "
               "standardDSv5Family Cores quota. Additional details - Deployment Model: Resource "
               "Manager, Location: eastus, Current Limit: 100, Current Usage: 96, Additional "
               "Required: 8, (Minimum) New Limit Required: 104.")
    parsed = parse_quota_alert(parse_alert(_activity_log(message)))
    assert parsed is not None and parsed.source == "deployment-failure"
    assert parsed.quota == QuotaId(SCOPE, "standardDSv5Family")
    other = parse_quota_alert(parse_alert(_activity_log("Disk is full").replace(
        b"QuotaExceeded", b"DiskFull")))
    assert other is None


def test_cli_table_sorts_by_days_to_exhaustion() -> None:
    from pitcrew.cli.quota import quota_table

    rows = [{"quota": q, "location": "eastus", "usage": 1, "limit": 2, "percent": p,
             "daysToExhaustion": d, "trendPerDay": None, "level": "ok"}
            for q, p, d in (("never", 90, None), ("later", 10, 30.0), ("soon", 10, 2.0))]
    table = quota_table(rows)
    assert [str(c) for c in table.columns[0].cells] == ["soon", "later", "never"]
