"""Quota units: the increase formula, thresholds, policy validation, alert recognition and the
CLI's ordering."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pitcrew.errors import InvalidInput
from pitcrew.events import parse_alert
from pitcrew.links import safe_link
from pitcrew.notify.model import Notification
from pitcrew.quota.intake import _notification as intake_notification
from pitcrew.quota.intake import parse_quota_alert
from pitcrew.quota.model import IncreaseRequest, QuotaId, QuotaState
from pitcrew.quota.notices import RUNBOOK, level_notification, request_notification, support_text
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


# ---------------------------------------------------------------- links in quota notifications

REPO = Path(__file__).resolve().parents[2]
_FILE_PATH = re.compile(r"\.(md|html?|txt)(#\S*)?$", re.IGNORECASE)


def _quota_notifications() -> list[Notification]:
    """Every quota notification shape: a level crossed and resolved, an increase request (with
    and without a support text), Azure's quota alert with and without a scan behind it."""
    quota = QuotaId(SCOPE, "standardDSv5Family")
    state = QuotaState(quota, usage=96, limit=100, level="critical", reasons=["96 % used"],
                       series=[(0.0, 90.0), (3600.0, 96.0)], slope_per_day=12.0,
                       days_to_exhaustion=0.3)
    resolved = QuotaState(quota, usage=10, limit=100, level="ok")
    request = IncreaseRequest(request_id="r1", quota=quota, current_limit=100, usage=96,
                              new_limit=150, reason="96 % used", actor="pitcrew",
                              status="Escalated", message="needs support")
    alert = parse_alert((SAMPLES / "common-alert-log-quota.json").read_bytes())
    parsed = parse_quota_alert(alert)
    assert parsed is not None
    return [level_notification(state, "warning"), level_notification(resolved, "critical"),
            request_notification(request),
            request_notification(request, support=support_text(
                quota, current=100, usage=96, wanted=150, why="growth")),
            intake_notification(alert, parsed, state), intake_notification(alert, parsed, None)]


def _relative_paths(sent: dict[str, Any]) -> list[str]:
    """Fact values, action URLs and words in them that name a file by a relative path
    (docs/runbooks/x.md): a person reading Slack, Teams, email or PagerDuty cannot open it."""
    found = []
    values = [str(v) for v in sent["facts"].values()]
    values += [a[k] for a in sent["actions"] for k in ("url", "command") if k in a]
    for value in values:
        for word in value.split():
            absolute = safe_link(word) is not None
            if not absolute and (_FILE_PATH.search(word) or word.startswith(("docs/", "./"))):
                found.append(word)
    return found


def test_quota_notifications_link_the_runbook_absolutely(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITCREW_PUBLIC_BASE_URL", "https://pitcrew.example.net")
    assert safe_link(RUNBOOK) == RUNBOOK
    assert RUNBOOK.endswith("/docs/runbooks/quota-increase.md")
    assert (REPO / "docs/runbooks/quota-increase.md").is_file()  # the link names a real page
    for notification in _quota_notifications():
        sent = notification.to_dict()  # the body every receiver renders from
        assert _relative_paths(sent) == [], notification.id
        urls = [a["url"] for a in sent["actions"] if "url" in a]
        assert RUNBOOK in urls, notification.id
        assert all(safe_link(url) == url for url in urls), urls
        # Facts stay facts: the quota and its numbers, not a link.
        assert sent["facts"]["quota"] == "standardDSv5Family"
        assert "runbook" not in sent["facts"]


def test_the_relative_path_check_finds_one() -> None:
    sent = {"facts": {"runbook": "docs/runbooks/quota-increase.md", "scope": SCOPE},
            "actions": [{"label": "x", "url": "https://example.com/docs/x.md"},
                        {"label": "y", "url": "a/b.md#c"}]}
    assert _relative_paths(sent) == ["docs/runbooks/quota-increase.md", "a/b.md#c"]


def test_sample_spacing_never_merges_scheduled_scans() -> None:
    def spacing(every: int) -> float:
        return QuotaPolicy.model_validate({"every_minutes": every}).sample_spacing

    assert spacing(60) == 600 and spacing(1440) == 600  # 10 minutes at most
    assert spacing(10) == 300  # half the interval: scheduled scans stay separate samples
    assert spacing(5) == spacing(1) == 150  # the timer fires every 5 minutes at most


def test_every_status_a_request_can_be_recorded_with_can_be_listed() -> None:
    from azure.mgmt.quota.models import RequestState

    from pitcrew.quota import api
    from pitcrew.quota.model import TERMINAL
    from pitcrew.quota.requests import NEEDS_SUPPORT

    # The Quota API's states (followed and recorded as they come), pitcrew's own.
    recorded = {s.value for s in RequestState} | NEEDS_SUPPORT | {"Submitting"}
    statuses = set(api.STATUSES)
    assert (recorded | TERMINAL) <= statuses
    assert "Planned" not in api.STATUSES  # a dry run is never recorded
    assert IncreaseRequest("r", QuotaId(SCOPE, "q"), 10, 9, 20, "", "a",
                           status="NotAdjustable").open is False
