"""A delivery of many events (issue 16): claimed, completed and audited together, and still
each handled exactly once: a delivery seen in part before, the same event twice in one
delivery, one event failing among others, the same delivery twice at once, audit records
kept when the delivery fails. Against Azurite and a real webhook receiver."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pitcrew.bootstrap import get_services
from pitcrew.intake import api, handlers
from pitcrew.intake.pipeline import process_events
from tests.conftest import SAMPLES
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("pitcrew_env")
HEADERS = {"content-type": "application/json"}


def events(count: int) -> list[dict[str, Any]]:
    template = json.loads((SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_text())[0]
    out = []
    for _ in range(count):
        version = uuid.uuid4().hex
        name = f"s{version[:10]}"
        data = dict(template["data"], Version=version, ObjectName=name,
                    Id=f"https://sample-kv.vault.azure.net/secrets/{name}/{version}")
        out.append(dict(template, id=str(uuid.uuid4()), subject=name, data=data))
    return out


def post(delivery: list[dict[str, Any]]) -> api.HttpResult:
    return api.receive_events("POST", HEADERS, json.dumps(delivery).encode())


def outcomes(result: api.HttpResult) -> list[str]:
    return [e["outcome"] for e in result.body["events"]]  # type: ignore[index]


def audited(action: str = "notify.expiry") -> Counter[str]:
    now = datetime.now(UTC)
    records = get_services().audit.query(since=now - timedelta(hours=1),
                                         until=now + timedelta(minutes=1), limit=10_000)
    return Counter(r.correlation_id for r in records if r.action == action)


def ids_of(delivery: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in delivery]


def test_a_delivery_seen_in_part_before_handles_only_what_is_new(receiver: Receiver) -> None:
    first = events(3)
    assert outcomes(post(first)) == ["handled"] * 3
    more = events(4)
    mixed = [more[0], first[1], more[1], first[0], more[2], first[2], more[3]]
    assert outcomes(post(mixed)) == ["handled", "duplicate", "handled", "duplicate",
                                     "handled", "duplicate", "handled"]
    counts = audited()
    assert all(counts[i] == 1 for i in ids_of(first + more)), counts
    assert len(receiver.received) == 7


def test_the_same_event_twice_in_one_delivery_is_handled_once(receiver: Receiver) -> None:
    batch = events(3)
    result = post([batch[0], batch[1], batch[0], batch[2]])
    assert outcomes(result) == ["handled", "handled", "duplicate", "handled"]
    assert audited()[ids_of(batch)[0]] == 1
    assert len(receiver.received) == 3


def test_one_failing_event_fails_the_delivery_and_only_it_is_repeated(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = events(5)
    broken = batch[2]["data"]["ObjectName"]
    real = handlers.rotate_on_event

    def rotate_or_break(kv: Any, services: Any) -> str | None:
        if kv.object_name == broken:
            raise ConnectionError("vault unreachable (injected)")
        return real(kv, services)

    monkeypatch.setattr(handlers, "rotate_on_event", rotate_or_break)
    result = post(batch)
    assert result.status == 500  # the platform retries the delivery
    assert len(receiver.received) == 4
    counts = audited()
    assert [counts[i] for i in ids_of(batch)] == [1, 1, 0, 1, 1]  # written although it failed

    monkeypatch.setattr(handlers, "rotate_on_event", real)
    again = post(batch)  # Event Grid's retry: the released event is handled now, alone
    assert outcomes(again) == ["duplicate", "duplicate", "handled", "duplicate", "duplicate"]
    assert [audited()[i] for i in ids_of(batch)] == [1, 1, 1, 1, 1]
    assert len(receiver.received) == 5


def test_the_same_delivery_twice_at_once_notifies_each_event_once(receiver: Receiver) -> None:
    batch = events(40)
    results: list[api.HttpResult] = []
    lock = threading.Lock()

    def deliver() -> None:
        result = post(batch)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each event handled by exactly one of the two; the other saw it done or still held (503:
    # Event Grid retries that delivery, which then finds it done).
    handled = Counter()
    for result in results:
        assert result.status in (200, 503), result.body
        if result.status == 200:
            for outcome, event in zip(outcomes(result), batch, strict=True):
                handled[event["id"]] += outcome == "handled"
    for result in results:
        if result.status == 503:
            retried = post(batch)
            assert retried.status == 200
            for outcome, event in zip(outcomes(retried), batch, strict=True):
                handled[event["id"]] += outcome == "handled"
    assert all(handled[e["id"]] == 1 for e in batch), handled
    assert all(n == 1 for n in audited().values())
    # A delivery the receiver was slow to answer waits in the outbox: drained, each was told
    # (at least once, the same notification id each time).
    for _ in range(20):
        if told(receiver) >= {f"expiry:{e['id']}" for e in batch}:
            break
        time.sleep(0.1)
        api.drain_outbox()
    assert told(receiver) == {f"expiry:{e['id']}" for e in batch}


def told(receiver: Receiver) -> set[str]:
    return {body["id"].split("|")[0] for body in receiver.received}


def test_audit_records_of_a_delivery_are_written_when_it_raises() -> None:
    services = get_services()
    from pitcrew.audit import AuditRecord, app_identity

    marker = uuid.uuid4().hex
    with pytest.raises(RuntimeError), services.audit.deferred():
        for n in range(3):
            services.audit.append(AuditRecord(
                actor=app_identity(), action="test.deferred", target=f"t/{n}",
                outcome="succeeded", correlation_id=marker, details={"n": n}))
        raise RuntimeError("after the records")
    assert audited("test.deferred")[marker] == 3


def test_process_events_answers_in_the_order_of_the_delivery() -> None:
    from pitcrew.events import only_events, parse_request

    batch = events(7)
    parsed = only_events(parse_request(json.dumps(batch).encode(), HEADERS))
    result = process_events(parsed, get_services(), concurrency=3)
    assert [o.event_id for o in result] == [e["id"] for e in batch]
    assert {o.kind for o in result} == {"handled"}


def test_a_group_that_fails_to_join_fails_the_delivery_and_the_retry_tells_nobody_twice(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One alert group of a delivery cannot be joined (storage fails under it): the others are
    still joined and told, the delivery fails (every announced event released, none audited),
    and Event Grid's retry announces all of them, telling each receiver each alert once."""
    from pitcrew.alerting.dispatch import Pipeline

    batch = events(5)
    broken = batch[3]["data"]["ObjectName"]
    real = Pipeline._join
    failed = []

    def join_or_fail(self: Pipeline, group_id: str, joining: Any, *args: Any) -> Any:
        if not failed and any(broken in fp for fp in joining.alerts):
            failed.append(group_id)
            raise ConnectionError("storage unreachable (injected)")
        return real(self, group_id, joining, *args)

    monkeypatch.setattr(Pipeline, "_join", join_or_fail)
    assert post(batch).status == 500
    assert failed and len(receiver.received) == 4
    assert [audited()[i] for i in ids_of(batch)] == [0] * 5

    again = post(batch)
    assert outcomes(again) == ["handled"] * 5
    assert len(receiver.received) == 5
    assert told(receiver) == {f"expiry:{e['id']}" for e in batch}
    assert [audited()[i] for i in ids_of(batch)] == [1] * 5
    details = [e["detail"] for e in again.body["events"]]  # type: ignore[index]
    assert details.count("notification delivered") == 1, details
    assert details.count("notification was delivered before") == 4, details


def test_a_handler_that_fails_as_a_whole_releases_every_claim(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the delivery's notifications fails (a bug, a policy read): the delivery fails,
    every claim is released at once (not held until its lease ends), and the retry handles
    them all."""
    batch = events(4)
    real = handlers.expiry_notification

    def broken(*args: Any) -> Any:
        raise RuntimeError("cannot build the notification (injected)")

    monkeypatch.setattr(handlers, "expiry_notification", broken)
    assert post(batch).status == 500
    monkeypatch.setattr(handlers, "expiry_notification", real)
    again = post(batch)
    assert outcomes(again) == ["handled"] * 4  # released, not "retry later"
    assert len(receiver.received) == 4


def test_an_alert_announced_again_says_where_its_notification_is(receiver: Receiver) -> None:
    """The same expiry announced again (a retried delivery after its claim was released):
    while the first notification still waits in the outbox the answer is "queued", never
    "delivered before"; once the receiver took it, "delivered before". Told once in all."""
    from pitcrew.events import only_events, parse_request
    from pitcrew.intake.handlers import expiry_notification

    services = get_services()
    [event] = only_events(parse_request(json.dumps(events(1)).encode(), HEADERS))
    notification = expiry_notification(handlers.keyvault_event(event), services.policy)
    receiver.status = 500
    assert services.router.send(notification).outcome == "queued"
    assert services.router.send(notification).outcome == "queued"
    receiver.status = 200
    for _ in range(20):
        if receiver.received:
            break
        time.sleep(0.1)
        api.drain_outbox()
    assert services.router.send(notification).outcome == "already-delivered"
    assert len(receiver.received) == 1
