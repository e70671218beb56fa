"""Issue 12: the alerting pipeline against Azurite and real local HTTP receivers.

Fired then Resolved reach the same receivers once each; ten alerts of one rule within
group_wait are one notification listing ten; a silenced alert sends nothing and its silence is
audited; an alert nothing else matches reaches the root receiver; inhibition; the outbox view
and retry; the watchdog. Group timing is driven by `sweep(now=...)` (what the timer and the
queue trigger call), never by sleeping."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pitcrew.alerting import api as alerting_api
from pitcrew.auth import encode_principal
from pitcrew.bootstrap import get_services, reset_services
from pitcrew.intake import api
from pitcrew.rotation import messages as rotation_messages
from pitcrew.runtime import reset_runtime
from tests.conftest import SAMPLES
from tests.receiver import Receiver

OPERATOR = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Operator"])}


@pytest.fixture
def pager() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")


def write(policy: Path, text: str) -> None:
    policy.write_text(text)
    reset_runtime()
    reset_services()


def tree_policy(hook: Receiver, pager: Receiver, *, group_wait: str = "0s",
                group_by: str = "[alertRule]", extra: str = "", child: str = "") -> str:
    return (
        "version: 1\n"
        "receivers:\n"
        f"  hook: {{type: webhook, url: '{hook.url}', timeout_seconds: 1}}\n"
        f"  pager: {{type: webhook, url: '{pager.url}', timeout_seconds: 1}}\n"
        "route:\n"
        "  receiver: hook\n"
        f"  group_by: {group_by}\n"
        f"  group_wait: {group_wait}\n"
        "  group_interval: 0s\n"
        "  repeat_interval: 4h\n"
        "  routes:\n"
        + (child or
           "    - matchers: ['severity=\"critical\"']\n"
           "      receiver: pager\n"
           "      continue: true\n"
           "    - matchers: ['kind=\"alert\"']\n"
           "      receiver: hook\n")
        + "outbox: {base_delay_seconds: 0.01, max_delay_seconds: 0.05}\n"
        + extra
    )


def alert(alert_id: str, *, rule: str = "sb-deadletter-depth", sev: str = "Sev2",
          condition: str = "Fired", rg: str = "sample-rg") -> bytes:
    payload = json.loads((SAMPLES / "common-alert-metric.json").read_text())
    essentials = payload["data"]["essentials"]
    essentials["alertId"] = (
        f"/subscriptions/0/providers/Microsoft.AlertsManagement/alerts/{alert_id}")
    essentials["alertRule"] = rule
    essentials["severity"] = sev
    essentials["monitorCondition"] = condition
    essentials["alertTargetIDs"] = [
        f"/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/{rg}/providers/"
        "microsoft.servicebus/namespaces/sample-sb"
    ]
    if condition == "Resolved":
        essentials["resolvedDateTime"] = "2026-11-21T14:10:00Z"
    return json.dumps(payload).encode()


def post(body: bytes) -> dict[str, Any]:
    result = api.receive_alert({}, body)
    assert result.status == 200, result.body
    return dict(result.body)


def audit(action: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    records = get_services().audit.query(since=now - timedelta(hours=1),
                                         until=now + timedelta(minutes=1))
    return [r.to_dict() for r in records if r.action == action]


def test_fired_then_resolved_reach_the_same_receivers_once_each(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    write(pitcrew_env, tree_policy(receiver, pager))
    fired = alert("a1", sev="Sev1")
    post(fired)
    assert post(fired)["outcome"] == "duplicate"
    assert [m["status"] for m in receiver.received] == ["firing"]
    assert [m["status"] for m in pager.received] == ["firing"]
    # The pager route is gone by the time it resolves: the Resolved still goes to exactly the
    # receivers that got the Fired (the group remembers them).
    write(pitcrew_env, tree_policy(receiver, pager, child=(
        "    - matchers: ['kind=\"alert\"']\n      receiver: hook\n")))
    resolved = alert("a1", sev="Sev1", condition="Resolved")
    post(resolved)
    assert post(resolved)["outcome"] == "duplicate"
    get_services().alerting.sweep(now=datetime.now(UTC) + timedelta(hours=5))
    assert [m["status"] for m in receiver.received] == ["firing", "resolved"]
    assert [m["status"] for m in pager.received] == ["firing", "resolved"]
    assert receiver.received[1]["alerts"][0]["status"] == "resolved"
    # The group resolved: nothing is left active.
    body = alerting_api.list_alerts(OPERATOR, {}).body
    assert body["groups"] == []



def test_an_alert_with_labels_larger_than_a_table_property_fires_and_resolves(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    # 32 custom-property labels of 1,024 non-ASCII characters: over the 64 KiB a Table
    # property holds, in the alert row and (grouped by every label) in the group row.
    write(pitcrew_env, tree_policy(receiver, pager, group_by="['...']"))
    wide = {f"k{i}": "\u00e9" * 1024 for i in range(40)}

    def wide_alert(condition: str) -> bytes:
        payload = json.loads(alert("wide", condition=condition))
        payload["data"]["customProperties"] = wide
        return json.dumps(payload).encode()

    fired = wide_alert("Fired")
    post(fired)
    assert post(fired)["outcome"] == "duplicate"
    post(wide_alert("Resolved"))
    get_services().alerting.sweep(now=datetime.now(UTC) + timedelta(hours=5))
    assert [m["status"] for m in receiver.received] == ["firing", "resolved"]
    labels = receiver.received[1]["alerts"][0]["labels"]
    assert labels["customProperties.k0"] == "\u00e9" * 1024


def test_a_resolved_nobody_heard_fire_is_not_sent(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    write(pitcrew_env, tree_policy(receiver, pager))
    outcome = post(alert("never-fired", condition="Resolved"))
    assert "not sent" in outcome["detail"]
    assert receiver.received == [] and pager.received == []


def test_a_big_group_is_listed_bounded_and_says_how_many_it_holds(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerting_api, "MAX_ALERTS_PER_GROUP", 3)
    write(pitcrew_env, tree_policy(receiver, pager, group_wait="30s"))
    for i in range(5):
        assert post(alert(f"big-{i}"))["outcome"] == "handled"
    for _ in range(2):
        (group,) = alerting_api.list_alerts(OPERATOR, {}).body["groups"]
        assert len(group["alerts"]) == 3
        assert group["alertCount"] == 5 and group["alertsListed"] == 3


def test_ten_alerts_of_one_rule_within_group_wait_are_one_notification(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    write(pitcrew_env, tree_policy(receiver, pager, group_wait="30s"))
    with ThreadPoolExecutor(max_workers=5) as pool:  # concurrent deliveries, one group
        outcomes = list(pool.map(lambda i: post(alert(f"ten-{i}")), range(10)))
    assert {o["outcome"] for o in outcomes} == {"handled"}
    assert all("grouped" in o["detail"] for o in outcomes)
    assert receiver.received == []
    (group,) = alerting_api.list_alerts(OPERATOR, {}).body["groups"]
    assert len(group["alerts"]) == 10 and group["labels"] == {"alertRule": "sb-deadletter-depth"}
    services = get_services()
    assert services.alerting.sweep() == []  # not due yet
    later = datetime.now(UTC) + timedelta(seconds=31)
    assert services.alerting.sweep(now=later) == [group["id"]]
    services.alerting.sweep(now=later)  # again: nothing new
    alerting_api.flush_group(group["id"])  # a late queue wake-up: nothing new either
    (message,) = receiver.received
    assert len(message["alerts"]) == 10
    assert message["status"] == "firing" and message["groupKey"] == group["groupKey"]
    assert "10 firing" in message["title"]
    assert len(audit("alerting.notify")) == 1


def test_a_silenced_alert_sends_nothing_and_its_silence_is_audited(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    write(pitcrew_env, tree_policy(receiver, pager))
    created = alerting_api.silences("POST", OPERATOR, {}, json.dumps({
        "matchers": ["alertRule=sb-deadletter-depth"], "for": "2h",
        "comment": "planned maintenance"}).encode())
    assert created.status == 201, created.body
    silence_id = created.body["id"]
    outcome = post(alert("silenced-1"))
    assert outcome["detail"] == "notification silenced"
    assert receiver.received == [] and pager.received == []
    (record,) = audit("alerting.silence.create")
    assert record["actor"] == "user:ops@example.com"
    assert record["details"]["comment"] == "planned maintenance"
    (notified,) = audit("notify.alert")
    assert notified["outcome"] == "silenced"
    assert notified["details"]["mutedBy"]["silences"] == [silence_id]
    (group,) = alerting_api.list_alerts(OPERATOR, {}).body["groups"]
    assert group["alerts"][0]["silencedBy"] == [silence_id]
    # Another rule is not silenced.
    post(alert("loud-1", rule="cpu-high"))
    assert len(receiver.received) == 1
    # Expire: audited, listed as expired; expiring again changes nothing.
    expired = alerting_api.expire_silence(OPERATOR, silence_id)
    assert expired.status == 200 and expired.body["state"] == "expired"
    assert alerting_api.expire_silence(OPERATOR, silence_id).status == 200
    assert len(audit("alerting.silence.expire")) == 1
    listed = alerting_api.silences("GET", OPERATOR, {"state": "expired"}, b"").body
    assert [s["id"] for s in listed["silences"]] == [silence_id]
    # Once the silence is over the muted alert is told at the group's next tick.
    get_services().alerting.sweep(now=datetime.now(UTC) + timedelta(minutes=2))
    assert any(m["title"].startswith("[Fired] sb-deadletter-depth") for m in receiver.received)


def test_expired_silences_are_not_read_for_each_alert(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    """Silences are never deleted: a year of them must not be read for every alert. The store
    returns only the unexpired ones (filtered by the query), and they still mute."""
    write(pitcrew_env, tree_policy(receiver, pager))
    old = []
    for n in range(5):
        made = alerting_api.silences("POST", OPERATOR, {}, json.dumps({
            "matchers": [f"alertRule=old-{n}"], "for": "1h", "comment": "done"}).encode())
        old.append(made.body["id"])
        assert alerting_api.expire_silence(OPERATOR, made.body["id"]).status == 200
    live = alerting_api.silences("POST", OPERATOR, {}, json.dumps({
        "matchers": ["alertRule=sb-deadletter-depth"], "for": "1h", "comment": "now"}).encode())
    store = get_services().alerting.silences._store
    assert [s.id for s in store.unexpired(datetime.now(UTC))] == [live.body["id"]]
    assert post(alert("quiet-1"))["detail"] == "notification silenced"


def test_silences_need_the_operator_role_and_valid_input(pitcrew_env: Path) -> None:
    reader = {"X-MS-CLIENT-PRINCIPAL": encode_principal("r@example.com", ["Reader"])}
    body = json.dumps({"matchers": ["alertRule=x"], "for": "1h", "comment": "c"}).encode()
    assert alerting_api.silences("POST", reader, {}, body).status == 403
    assert alerting_api.silences("POST", {}, {}, body).status == 401
    for bad, field in [({"matchers": [], "for": "1h", "comment": "c"}, "matchers"),
                       ({"matchers": ["alertRule=~\"(\""], "for": "1h", "comment": "c"},
                        "matchers[0]"),
                       ({"matchers": ["alertRule=~\".*\""], "for": "1h", "comment": "c"},
                        "matchers"),
                       ({"matchers": ["alertRule=x"], "for": "soon", "comment": "c"}, "for"),
                       ({"matchers": ["alertRule=x"], "for": "1h"}, "comment"),
                       ({"matchers": ["alertRule=x"], "comment": "c"}, "for"),
                       ({"matchers": ["alertRule=x"], "for": "1h",
                         "endsAt": "2030-01-01T00:00:00Z", "comment": "c"}, "for"),
                       ({"matchers": ["alertRule=x"], "endsAt": "2030-01-01T00:00:00",
                         "comment": "c"}, "endsAt")]:
        answer = alerting_api.silences("POST", OPERATOR, {}, json.dumps(bad).encode())
        assert answer.status == 400 and answer.body["field"] == field, (bad, answer.body)
    assert alerting_api.expire_silence(OPERATOR, "0" * 32).status == 404
    assert alerting_api.expire_silence(OPERATOR, "../x").status == 400


def test_an_alert_nothing_else_matches_reaches_the_root_receiver(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    write(pitcrew_env, tree_policy(receiver, pager, child=(
        "    - matchers: ['alertRule=\"disk-full\"']\n      receiver: pager\n")))
    post(alert("root-1", rule="sb-deadletter-depth"))
    assert len(receiver.received) == 1 and pager.received == []
    assert get_services().alerting.receivers_for(
        get_services().outbox.pending()[0].notification if get_services().outbox.pending()
        else _expiry()) == ["hook"]


def _expiry() -> Any:
    from pitcrew.notify.model import Notification

    return Notification(id="x", dedup_key="x", kind="expiry", severity="warning",
                        status="firing", title="t", summary="s", correlation_id="c")


def test_inhibition_mutes_the_target_never_the_source_itself(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    write(pitcrew_env, tree_policy(receiver, pager, extra=(
        "inhibit_rules:\n"
        "  - source_matchers: ['severity=\"critical\"']\n"
        "    target_matchers: ['kind=\"alert\"']\n"
        "    equal: [resourceGroup]\n")))
    post(alert("src-1", rule="namespace-down", sev="Sev0"))  # matches source and target
    assert len(pager.received) == 1  # never inhibited by itself
    outcome = post(alert("tgt-1", rule="queue-depth", sev="Sev2"))
    assert outcome["detail"] == "notification inhibited"
    post(alert("other-rg", rule="queue-depth-2", sev="Sev2", rg="other-rg"))
    titles = [m["title"] for m in receiver.received]
    assert any("namespace-down" in t for t in titles)
    assert any("queue-depth-2" in t for t in titles)
    assert not any("queue-depth (" in t for t in titles)


def test_rotation_failure_is_resolved_by_a_later_success(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    write(pitcrew_env, tree_policy(receiver, pager))
    data = {"vault": "kv", "secret": "db", "strategy": "cosmos-keys", "trigger_version": "v1"}
    pipeline = get_services().alerting
    pipeline.send(rotation_messages.failed("run-1", data, "the provider said no.", None))
    pipeline.send(rotation_messages.rotated("run-2", {**data, "new_version": "v2"}))
    assert [m["status"] for m in pager.received] == ["firing", "resolved"]
    # A success that resolves nothing is still news, sent once on its own.
    pipeline.send(rotation_messages.rotated("run-3", {**data, "new_version": "v3"}))
    assert receiver.received[-1]["id"] == "rotation:run-3:succeeded"


def test_the_outbox_view_and_retry(pitcrew_env: Path, receiver: Receiver,
                                   pager: Receiver) -> None:
    write(pitcrew_env, tree_policy(receiver, pager, extra=(
        "alerting: {watchdog: {after_attempts: 1, receiver: pager}}\n")))
    receiver.status = 500
    post(alert("retry-1"))
    page = alerting_api.list_notifications(OPERATOR, {"status": "failed"}).body
    (failed,) = page["notifications"]
    assert failed["attempts"] == 1 and failed["lastError"] == "HTTP 500"
    assert alerting_api.list_notifications(OPERATOR, {"status": "nope"}).status == 400
    # The watchdog raises one pitcrew alert to its receiver, once.
    services = get_services()
    assert alerting_api.watch_deliveries(services) == 1
    assert alerting_api.watch_deliveries(services) == 0
    (stuck,) = pager.received
    assert stuck["kind"] == "pitcrew" and "hook" in stuck["title"]
    receiver.status, receiver.delay = 200, 0.6  # under the receiver's 1 s timeout
    attempts = receiver.attempts
    first: list[Any] = []
    retrying = threading.Thread(
        target=lambda: first.append(alerting_api.retry_notification(OPERATOR, failed["id"])))
    retrying.start()
    deadline = time.monotonic() + 10
    while receiver.attempts == attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    # A second operator's retry while the first is delivering: nothing done, nothing failed.
    assert alerting_api.retry_notification(OPERATOR, failed["id"]).body["result"] == "busy"
    retrying.join()
    (retried,) = first
    assert retried.status == 200 and retried.body["result"] == "delivered"
    assert len(receiver.received) == 1
    assert alerting_api.retry_notification(OPERATOR, failed["id"]).body["result"] == "already"
    # Only the retry that delivered succeeded: the busy one and the one after it sent nothing.
    outcomes = {r["details"]["result"]: (r["outcome"], r["details"].get("reason"))
                for r in audit("notify.retry")}
    assert outcomes == {"delivered": ("succeeded", None),
                        "busy": ("skipped", "another attempt is delivering it now"),
                        "already": ("skipped", "delivered before; nothing sent")}, outcomes
    assert alerting_api.retry_notification(OPERATOR, "!!").status == 400


def test_a_dead_letter_group_fires_escalates_and_resolves_once(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver
) -> None:
    from pitcrew.deadletter.model import Group
    from pitcrew.deadletter.notices import group_notification

    write(pitcrew_env, tree_policy(receiver, pager))
    services = get_services()
    now = datetime.now(UTC)
    group = Group(id="0123456789ab", source="orders", entity="orders", cause="boom",
                  reason="r", description="d", count=3, first_seen=now, last_seen=now)
    dlq_policy = services.policy.deadletter
    services.alerting.send(group_notification(group, 1, dlq_policy))
    services.alerting.send(group_notification(group, 1, dlq_policy))  # the same news: nothing
    services.alerting.send(group_notification(group, 10, dlq_policy))  # a threshold: news
    assert [m["id"] for m in receiver.received] == [
        "deadletter:0123456789ab:1", "deadletter:0123456789ab:10"]
    services.alerting.resolve("deadletter:0123456789ab", summary="replayed")
    services.alerting.resolve("deadletter:0123456789ab", summary="replayed")
    assert [m["status"] for m in receiver.received] == ["firing", "firing", "resolved"]
    assert alerting_api.list_alerts(OPERATOR, {}).body["groups"] == []


def test_get_and_post_on_the_alerts_route_are_two_functions_on_the_local_host(
    pitcrew_env: Path, receiver: Receiver
) -> None:
    """POST /api/alerts keeps its function key; GET /api/alerts is an operator route."""
    import os

    import httpx

    import function_app
    from pitcrew_dev.host import build_host, serving

    host = build_host(function_app.app, function_key="k", allow_dev_principal=True,
                      settings=os.environ)
    with serving(host) as url:
        assert httpx.post(f"{url}/api/alerts", content=alert("host-1")).status_code == 401
        posted = httpx.post(f"{url}/api/alerts", content=alert("host-1"),
                            headers={"x-functions-key": "k"})
        assert posted.status_code == 200, posted.text
        assert httpx.get(f"{url}/api/alerts").status_code == 401  # no principal
        listed = httpx.get(f"{url}/api/alerts", headers=OPERATOR)
        assert listed.status_code == 200 and "groups" in listed.json()


def test_the_location_of_a_new_silence_answers_it_on_the_local_host(
    pitcrew_env: Path, receiver: Receiver
) -> None:
    """POST /api/silences answers `Location: /api/silences/{id}`: a GET there (role Reader)
    answers the silence, as DELETE there expires it."""
    import os

    import httpx

    import function_app
    from pitcrew_dev.host import build_host, serving

    reader = {"X-MS-CLIENT-PRINCIPAL": encode_principal("r@example.com", ["Reader"])}
    host = build_host(function_app.app, function_key="k", allow_dev_principal=True,
                      settings=os.environ)
    with serving(host) as url:
        created = httpx.post(f"{url}/api/silences", headers=OPERATOR, json={
            "matchers": ["alertRule=db-[primary]"], "for": "1h", "comment": "INC-1"})
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location == f"/api/silences/{created.json()['id']}"
        for _ in range(2):  # reading it changes nothing
            shown = httpx.get(f"{url}{location}", headers=reader)
            assert shown.status_code == 200, shown.text
            assert shown.json() == created.json()
        assert httpx.get(f"{url}{location}").status_code == 401  # no principal
        missing = httpx.get(f"{url}/api/silences/{'0' * 32}", headers=reader)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        bad = httpx.get(f"{url}/api/silences/not-an-id", headers=reader)
        assert bad.status_code == 400 and bad.json()["field"] == "id"
        assert httpx.delete(f"{url}{location}", headers=OPERATOR).status_code == 200
        assert httpx.get(f"{url}{location}", headers=reader).json()["state"] == "expired"


@pytest.mark.parametrize("grouped", [False, True], ids=["flat", "group_by"])
def test_an_alert_that_changes_while_its_new_group_flushes_is_told_in_the_same_call(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver, grouped: bool
) -> None:
    """The flush of a group just made does not read its alerts back after delivering: an alert
    that joins meanwhile rewrites the group row, so the flush's closing save fails and it
    looks again. Played here by a channel whose first delivery waits for the same alert,
    changed, to be sent from another thread."""
    if grouped:
        write(pitcrew_env, tree_policy(receiver, pager, child="    []\n"))
    else:
        write(pitcrew_env, "version: 1\nchannels:\n"
              f"  hook: {{type: webhook, url: '{receiver.url}', timeout_seconds: 1}}\n"
              "routes:\n  - name: all\n    channels: [hook]\n")
    from pitcrew.notify.model import Notification

    pipeline = get_services().alerting
    first = Notification(id="depth:1", dedup_key="depth", kind="alert", severity="warning",
                         status="firing", title="depth 10", summary="s", correlation_id="c")
    changed = dataclasses.replace(first, id="depth:2", title="depth 500")
    real = pipeline.receivers["hook"]
    joined: list[Any] = []

    class JoinsMeanwhile:
        def deliver(self, notification: Notification) -> None:
            if not joined:
                worker = ThreadPoolExecutor(max_workers=1)
                joined.append(worker.submit(pipeline.send, changed).result())
                worker.shutdown()
            real.deliver(notification)

    pipeline.receivers = {**pipeline.receivers, "hook": JoinsMeanwhile()}  # type: ignore[misc]
    dispatch = pipeline.send(first)
    assert set(dispatch.delivered) == {"hook"}  # both rounds of the one flush delivered
    assert joined[0].grouped == ["hook"]  # the joiner found the group's flush under way
    assert [m["title"] for m in receiver.received] == ["depth 10", "depth 500"]
    # Told once each: the group's log holds the changed alert, so it is not told again.
    assert pipeline.send(changed).delivered == []
    assert len(receiver.received) == 2


def test_the_shipped_policy_groups_a_deliverys_expiries_and_reminds_them_once_a_day(
    pitcrew_env: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pitcrew.yaml as deployed: a delivery of three near-expiries is one notification, sent
    group_wait (30 s) after it arrived, listing the three; nothing is sent again within the
    day, then one reminder; an Azure Monitor alert is reminded every four hours."""
    shipped = Path(__file__).resolve().parents[2] / "pitcrew.yaml"
    monkeypatch.setenv("PITCREW_OPS_WEBHOOK_URL", receiver.url)
    write(pitcrew_env, shipped.read_text())
    template = json.loads((SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_text())[0]
    events = []
    for n in range(3):
        name, version = f"shipped-{n}", f"{n:032x}"
        data = dict(template["data"], ObjectName=name, Version=version,
                    Id=f"https://sample-kv.vault.azure.net/secrets/{name}/{version}")
        events.append(dict(template, id=f"shipped-event-{n}", subject=name, data=data))
    result = api.receive_events("POST", {"content-type": "application/json"},
                                json.dumps(events).encode())
    assert result.status == 200, result.body
    assert {e["outcome"] for e in result.body["events"]} == {"handled"}  # type: ignore[index]
    post(alert("shipped-alert"))
    assert receiver.received == []  # both wait for group_wait

    pipeline = get_services().alerting
    start = datetime.now(UTC)
    assert len(pipeline.sweep(now=start + timedelta(seconds=31))) == 2
    by_kind = {message["labels"]["kind"]: message for message in receiver.received}
    assert sorted(by_kind) == ["alert", "expiry"] and len(receiver.received) == 2
    assert len(by_kind["expiry"]["alerts"]) == 3 and "3 firing" in by_kind["expiry"]["title"]

    pipeline.sweep(now=start + timedelta(hours=4, minutes=1))
    (reminder,) = receiver.received[2:]
    assert reminder["labels"]["kind"] == "alert" and "(reminder)" in reminder["title"]
    pipeline.sweep(now=start + timedelta(hours=24, minutes=1))
    kinds = sorted(message["labels"]["kind"] for message in receiver.received[3:])
    assert kinds == ["alert", "expiry"]  # the expiry's first reminder, a day later


def test_a_flush_that_died_before_its_log_was_saved_loses_no_alert_that_joins_later(
    pitcrew_env: Path, receiver: Receiver, pager: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(pitcrew_env, tree_policy(receiver, pager, group_wait="30s"))
    post(alert("crash-1"))
    post(alert("crash-2"))
    services = get_services()
    save = services.alerting.nflog.save
    died = []

    def dies_once(entry: Any) -> Any:
        if not died:
            died.append(entry)
            raise RuntimeError("the instance died after handing the notification over")
        return save(entry)

    monkeypatch.setattr(services.alerting.nflog, "save", dies_once)
    start = datetime.now(UTC)
    services.alerting.sweep(now=start + timedelta(seconds=31))  # logs the failure, retries later
    assert died and [len(m["alerts"]) for m in receiver.received] == [2]

    post(alert("crash-3"))  # joins before the retry of the flush that died
    for seconds in (400, 800, 1600):
        services.alerting.sweep(now=start + timedelta(seconds=seconds))
    told = [{a["id"].rsplit("/", 1)[-1].split("|")[0] for a in m["alerts"]}
            for m in receiver.received]
    assert told[0] == {"crash-1", "crash-2"}
    assert any("crash-3" in alerts for alerts in told[1:]), told
    assert len({m["id"] for m in receiver.received}) == len(receiver.received)
