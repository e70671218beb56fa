"""Quota end to end: the local Azure endpoint's Quota API through azure-mgmt-quota, Azurite,
a webhook receiver. A quota growing toward its limit produces one alert with a forecast, one
increase request, its status followed to the end and the audit of each step; a concurrent
scan and a quota alert for the same quota add no second request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pitcrew.audit import AuditQuery
from pitcrew.bootstrap import get_services
from pitcrew.events import parse_alert
from pitcrew.intake.pipeline import process_alert
from pitcrew.quota import api
from pitcrew.quota.model import QuotaId
from pitcrew.quota.notices import RUNBOOK, RUNBOOK_ACTION
from pitcrew.quota.requests import follow
from pitcrew.quota.scan import scan
from pitcrew_dev.azure_endpoint import LocalAzure, start_local_azure
from tests.integration.quota_support import QUOTA, QuotaWorld, quota_world
from tests.receiver import Receiver

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
COSMOS = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/app-rg/providers/"
          "Microsoft.DocumentDB/databaseAccounts/app-cosmos")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LocalAzure]:
    config = {"metrics": [{"resource": COSMOS, "metric": "NormalizedRUConsumption",
                           "value": 70, "growth_per_hour": 0, "unit": "Percent"}]}
    with start_local_azure(config=config) as local:
        yield local


@pytest.fixture
def world(pitcrew_env: Path, endpoint: LocalAzure, monkeypatch: pytest.MonkeyPatch
          ) -> QuotaWorld:
    return quota_world(pitcrew_env, endpoint, monkeypatch)


def quota_notes(receiver: Receiver) -> list[dict[str, Any]]:
    return [n for n in receiver.received if n.get("kind") == "quota"]


def audit_actions(target: str) -> list[str]:
    services = get_services()
    now = datetime.now(UTC)
    page = services.audit.page(AuditQuery(since=now - timedelta(days=1),
                                          until=now + timedelta(minutes=1), target=target),
                               limit=1000)
    return [r.action for r in page.items]


def grow(world: QuotaWorld, usages: list[int], start: datetime = T0) -> list[Any]:
    """One scan per usage, an hour apart."""
    reports = []
    for i, usage in enumerate(usages):
        world.seed(usage=usage)
        reports.append(scan(get_services().quota, now=start + timedelta(hours=i)))
    return reports


def test_growing_quota_one_alert_one_request_followed_to_the_end(
        world: QuotaWorld, receiver: Receiver) -> None:
    world.seed(limit=100, usage=50, polls=1, outcome="Succeeded")
    reports = grow(world, [50, 55, 60])
    q = get_services().quota
    quota_id = f"{world.scope}/{QUOTA}"

    # The third sample gives a forecast: +5/hour = 120/day, 40 left: a third of a day.
    state = q.store.get(reports[-1].requests[0].request.quota)
    assert state is not None and state.days_to_exhaustion == pytest.approx(40 / 120, rel=0.01)
    assert state.level == "critical"
    alerts = [n for n in quota_notes(receiver) if n["id"].startswith("quota:")]
    assert len(alerts) == 1
    assert alerts[0]["facts"]["quota"] == QUOTA and alerts[0]["facts"]["location"] == "eastus"
    assert alerts[0]["facts"]["daysToExhaustion"] == "0.3"
    # One request: max(60 x 1.5, 100 + 10) = 110.
    assert [r["limit"] for r in world.requests_for()] == [110]

    # More growth, a second scan at the same moment from another instance, Azure's quota
    # alert for the same quota: still one request and one threshold alert.
    world.seed(usage=65)
    later = T0 + timedelta(hours=3)
    threads = [threading.Thread(target=scan, args=(q,), kwargs={"now": later}) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcome = process_alert(parse_alert(world.quota_alert()), get_services())
    assert outcome.kind == "handled"
    assert len(world.requests_for()) == 1
    assert len([n for n in quota_notes(receiver) if n["id"].startswith("quota:")]) == 1
    alert_note = next(n for n in quota_notes(receiver) if n["id"].startswith("quota-alert:"))
    assert alert_note["facts"]["quota"] == QUOTA
    assert alert_note["facts"]["daysToExhaustion"] != "never (not growing)"

    # Followed to the end: InProgress, then Succeeded (the limit is raised).
    assert [o.request.status for o in follow(q)] == ["InProgress"]
    assert [o.request.status for o in follow(q)] == ["Succeeded"]
    assert follow(q) == []
    assert world.limit_of() == 110
    assert q.requests.open_for(state.quota) is None
    statuses = [n["facts"]["status"] for n in quota_notes(receiver)
                if n["id"].startswith("quota-request:")]
    assert statuses == ["Accepted", "InProgress", "Succeeded"]
    # Every quota body that reached the receiver links the runbook as an absolute https action;
    # no fact carries a path a person could not open.
    assert RUNBOOK.startswith("https://")
    for note in quota_notes(receiver):
        assert {"label": RUNBOOK_ACTION.label, "url": RUNBOOK} in note["actions"], note["id"]
        assert not any("docs/" in str(v) for v in note["facts"].values()), note["facts"]
    actions = audit_actions(quota_id)
    for action in ("notify.quota", "quota.request.claimed", "quota.request.submitted",
                   "quota.request.status", "notify.quota.request", "notify.quota.alert"):
        assert action in actions, action
    # The next scan reads the new limit: 65/110 is below every threshold; resolved once.
    scan(q, now=T0 + timedelta(hours=4))
    state = q.store.get(state.quota)
    assert state is not None and state.limit == 110


def test_flat_quota_is_not_forecast_and_not_noise(world: QuotaWorld, receiver: Receiver) -> None:
    world.seed(limit=100, usage=40)
    grow(world, [40, 40, 40, 40, 40])
    state = get_services().quota.store.get(
        next(iter(get_services().quota.store.states(world.scope).values())).quota)
    assert state is not None
    assert state.slope_per_day == 0 and state.days_to_exhaustion is None and state.level == "ok"
    assert quota_notes(receiver) == [] and world.requests_for() == []


def test_dry_run_and_plan_mode_send_nothing(world: QuotaWorld, receiver: Receiver,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    world.seed(limit=100, usage=70)
    monkeypatch.setenv("PITCREW_QUOTA_AUTO_INCREASE", "false")
    grow(world, [70, 80, 90])
    assert world.requests_for() == []  # the switch is off: planned, audited, not sent
    assert "quota.request.planned" in audit_actions(f"{world.scope}/{QUOTA}")


def test_failed_request_and_non_adjustable_quota_get_support_text(
        world: QuotaWorld, receiver: Receiver) -> None:
    world.seed(limit=100, usage=50, outcome="Failed", polls=0)
    world.seed(name="lowPriorityCores", limit=10, usage=9, adjustable=False)
    grow(world, [50, 70, 90])
    q = get_services().quota
    assert [o.request.status for o in follow(q)] == ["Failed"]
    failed = [n for n in quota_notes(receiver) if n["facts"].get("status") == "Failed"]
    assert len(failed) == 1
    text = failed[0]["facts"]["supportRequest"]
    assert "What: increase the quota standardDSv5Family" in text and "Wanted: limit" in text
    fixed = [n for n in quota_notes(receiver)
             if n["facts"].get("quota") == "lowPriorityCores" and "supportRequest" in n["facts"]]
    assert fixed and "cannot adjust" in fixed[0]["facts"]["supportRequest"]
    assert not [r for r in world.requests_for("lowPriorityCores")]


def test_operator_routes(world: QuotaWorld, receiver: Receiver,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.auth import encode_principal

    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    operator = {"X-MS-CLIENT-PRINCIPAL": encode_principal("olga", ["Operator"])}
    reader = {"X-MS-CLIENT-PRINCIPAL": encode_principal("rita", ["Reader"])}
    world.seed(limit=100, usage=10)
    assert api.scan_now(operator).status == 200
    listed = api.list_quotas(reader, {"location": "eastus", "limit": "5"})
    assert listed.status == 200
    row = next(r for r in listed.body["quotas"] if r["subscription"] == world.subscription)
    assert row["usage"] == 10 and row["limit"] == 100 and row["percent"] == 10
    body = f'{{"quota": "{world.scope}/{QUOTA}", "limit": 150}}'.encode()
    planned = api.create_request(operator, body)
    assert planned.status == 200 and planned.body["status"] == "Planned"
    assert world.requests_for() == []
    assert api.create_request(reader, body).status == 403
    sent = api.create_request(
        operator, f'{{"quota": "{world.scope}/{QUOTA}", "limit": 150, "dryRun": false}}'.encode())
    assert sent.status == 202 and sent.body["actor"].endswith("olga")
    again = api.create_request(
        operator, f'{{"quota": "{world.scope}/{QUOTA}", "limit": 160, "dryRun": false}}'.encode())
    assert again.status == 200 and again.body["detail"].startswith("a request")
    assert len(world.requests_for()) == 1
    requests = api.list_requests(reader, {})
    assert requests.status == 200 and requests.body["requests"][0]["newLimit"] == 150
    for bad in (b'{"quota": "nope", "limit": 1}', b'{"quota": "' + world.scope.encode()
                + b'/' + QUOTA.encode() + b'", "limit": 50}', b"[]", b'{"limit": true}'):
        answer = api.create_request(operator, bad)
        assert answer.status == 400, bad
    assert api.list_quotas(reader, {"level": "bogus"}).status == 400
    assert api.list_requests(reader, {"continuation": "x"}).status == 400


def test_sdk_poller_follows_the_long_running_operation(world: QuotaWorld) -> None:
    """The Quota API's PUT is long-running: the SDK's own poller reaches the final limit."""
    from azure.mgmt.quota import QuotaMgmtClient

    from pitcrew_dev.azure_endpoint.credential import LocalCredential

    world.seed(limit=20, usage=5, polls=2)
    client = QuotaMgmtClient(LocalCredential(), world.subscription,
                             **world.endpoint.mgmt_client_kwargs())
    poller = client.quota.begin_create_or_update(
        resource_name=QUOTA, scope=world.scope,
        create_quota_request={"properties": {"limit": {"limitObjectType": "LimitValue",
                                                       "value": 40}}})
    result = poller.result()
    assert result.properties.limit.value == 40
    with pytest.raises(Exception) as refused:
        client.quota.begin_create_or_update(
            resource_name=QUOTA, scope=world.scope,
            create_quota_request={"properties": {"limit": {"value": 1}}}).result()
    assert "below the current usage" in str(refused.value)


def test_capacity_metric_is_scanned_like_a_quota(world: QuotaWorld, receiver: Receiver) -> None:
    world.write_policy(
        "  capacity:\n"
        "    - name: cosmos-ru\n"
        f"      resource: {COSMOS}\n"
        "      metric: NormalizedRUConsumption\n"
        "      capacity: 80\n"
        "    - name: typo\n"
        f"      resource: {COSMOS}\n"
        "      metric: NoSuchMetric\n"
        "      capacity: 100\n")
    report = scan(get_services().quota, now=T0)
    assert report.failed_scopes == [f"{COSMOS.strip('/')}/NoSuchMetric"]
    states = get_services().quota.store.states(COSMOS.strip("/"))
    ru = states["NormalizedRUConsumption"]
    assert ru.quota.kind == "metric" and ru.usage == 70 and ru.limit == 80
    assert ru.level == "warning"  # 87.5 % of the capacity
    note = next(n for n in quota_notes(receiver)
                if n["facts"]["quota"] == "NormalizedRUConsumption")
    assert note["facts"]["provider"] == "Microsoft.DocumentDB"


def test_scans_run_again_seconds_apart_keep_the_forecast_and_the_level(
        world: QuotaWorld, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pitcrew quota scan` run a few more times right after a scan (and two at once) reads the
    same usage: the forecast, the level and the notifications stay what they were (before,
    the rescans' flat pairs outvoted the growth: `never +0.00 ok`, a false `[resolved]`, then
    critical again at the next scheduled scan)."""
    monkeypatch.setenv("PITCREW_QUOTA_AUTO_INCREASE", "false")  # requests are not the point
    stepped = "standardESv5Family"
    world.seed(limit=100, usage=39)
    world.seed(name=stepped, limit=100, usage=39)
    q = get_services().quota
    # Hourly: one quota grows 2 an hour, the other stepped up 4 and held an hour. Both at 43 %,
    # exhausted in about a day (critical_days 3): critical on days, not on percent.
    for hour, (steady, step) in enumerate([(39, 39), (41, 43), (43, 43)]):
        world.seed(usage=steady)
        world.seed(name=stepped, usage=step)
        scan(q, now=T0 + timedelta(hours=hour))
    last = T0 + timedelta(hours=2)

    def states() -> dict[str, Any]:
        return {name: s for name, s in q.store.states(world.scope).items()
                if name in (QUOTA, stepped)}

    first = states()
    for state in first.values():
        assert state.level == "critical" and state.percent == 43, state
        assert state.days_to_exhaustion == pytest.approx(57 / 48, rel=0.01)
    assert sorted(n["facts"]["quota"] for n in quota_notes(receiver)) == sorted([stepped, QUOTA])

    def same_as_first() -> None:
        for name, state in states().items():
            assert state.level == "critical", (name, state.slope_per_day)
            assert state.days_to_exhaustion == pytest.approx(
                first[name].days_to_exhaustion, rel=1e-3), name
            assert state.slope_per_day == pytest.approx(first[name].slope_per_day, rel=1e-3)

    for seconds in (5, 10, 15):
        scan(q, now=last + timedelta(seconds=seconds))
        same_as_first()
    threads = [threading.Thread(target=scan, args=(q,),
                                kwargs={"now": last + timedelta(seconds=20)}) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    same_as_first()
    notes = quota_notes(receiver)
    assert not [n for n in notes if n.get("status") == "resolved" or "[resolved]" in n["title"]]
    assert len(notes) == 2  # the two critical alerts, nothing since

    # The next scheduled scan, growth gone on: still critical, one notification per level.
    world.seed(usage=45)
    world.seed(name=stepped, usage=47)
    scan(q, now=T0 + timedelta(hours=3))
    assert [s.level for s in states().values()] == ["critical", "critical"]
    assert len(quota_notes(receiver)) == 2


def test_not_adjustable_request_is_listed_and_filterable(
        world: QuotaWorld, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notification of a request that ended NotAdjustable says "See the requests: pitcrew
    quota requests": the request is there, and `--status NotAdjustable` finds it (before, it was
    never recorded and the status was a 400)."""
    from pitcrew.auth import encode_principal

    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    reader = {"X-MS-CLIENT-PRINCIPAL": encode_principal("rita", ["Reader"])}
    fixed = "lowPriorityCores"
    world.seed(name=fixed, limit=10, usage=9, adjustable=False)
    q = get_services().quota
    scan(q, now=T0)
    scan(q, now=T0 + timedelta(hours=1))  # the same episode: no second request
    note = next(n for n in quota_notes(receiver)
                if n["id"].startswith("quota-request:") and n["facts"]["quota"] == fixed)
    assert note["facts"]["status"] == "NotAdjustable"
    assert "pitcrew quota requests" in [a.get("command") for a in note["actions"]]
    request_id = note["facts"]["request"]

    def listed(query: dict[str, str]) -> list[dict[str, Any]]:
        answer = api.list_requests(reader, {"limit": "100", **query})
        assert answer.status == 200, answer.body
        return [r for r in answer.body["requests"] if r["subscription"] == world.subscription]

    everything = listed({})
    assert [(r["id"], r["quota"].rsplit("/", 1)[-1], r["status"]) for r in everything] == [
        (request_id, fixed, "NotAdjustable")]
    assert [r["id"] for r in listed({"status": "NotAdjustable"})] == [request_id]
    assert [r["id"] for r in listed({"status": "notadjustable"})] == [request_id]
    assert listed({"status": "Succeeded"}) == []
    for status in api.STATUSES:  # every status a request can be recorded with is a filter
        assert api.list_requests(reader, {"status": status}).status == 200, status
    bad = api.list_requests(reader, {"status": "Bogus"})
    assert bad.status == 400 and "NotAdjustable" in str(bad.body)
    # Never the quota's open request: nothing to follow, and the next request is not blocked.
    assert q.requests.open_for(QuotaId(world.scope, fixed)) is None
    assert follow(q) == []
    assert world.requests_for(fixed) == []
