"""Service Bus dead-letter queues through a fake at the azure-servicebus client boundary (no
emulator runs offline), with the store on Azurite: peek-lock ingest that settles only after the
store write, lock loss, every property round-tripped, message-id policies, topic subscriptions,
and a replay killed mid-batch then resumed with nothing lost and only marked duplicates."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pitcrew.deadletter import api
from pitcrew.deadletter.ingest import scan
from tests.integration.dlq_support import get_deadletter
from tests.integration.fake_servicebus import FakeNamespace
from tests.integration.test_deadletter_storage import (
    OPERATOR,
    READER,
    FakeClock,
    drain,
    poison,
    run_job,
    write_policy,
)
from tests.receiver import Receiver

NS = "fake-sb.servicebus.windows.net"


@pytest.fixture
def ns(pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> FakeNamespace:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    write_policy(pitcrew_env, (
        "deadletter:\n"
        "  sources:\n"
        f"    - {{name: orders, type: servicebus, namespace: {NS}, queue: orders}}\n"
        f"    - {{name: billing, type: servicebus, namespace: {NS}, topic: events, "
        "subscription: billing}\n"
        f"    - {{name: work, type: storage-queue, queue: {unique_name}}}\n"
    ))
    from pitcrew.runtime import get_runtime

    clock = FakeClock()
    namespace = FakeNamespace(clock, lock_seconds=30)
    namespace.clock_handle = clock  # type: ignore[attr-defined]
    get_runtime().cached(f"servicebus:{NS}:", lambda: namespace)
    return namespace


def dead_letter_orders(ns: FakeNamespace, count: int) -> list[Any]:
    return [ns.dead_letter(
        "orders", json.dumps({"order": i}).encode(), "ProcessingFailed",
        f"order {1000 + i} rejected by tenant 3f2504e0-4f89-11d3-9a0c-0305e82c33{i % 100:02d}",
        message_id=f"order-{i}", correlation_id=f"corr-{i}", subject="order.created",
        content_type="application/json", session_id=f"s-{i % 3}", partition_key=f"s-{i % 3}",
        reply_to="replies", time_to_live=timedelta(hours=1),
        application_properties={"tenant": "contoso", "attempt": i, "ratio": 0.5,
                                "flag": True}) for i in range(count)]


def test_ingest_keeps_every_property_and_replays_them(ns: FakeNamespace,
                                                      receiver: Receiver) -> None:
    dead_letter_orders(ns, 3)
    (report,) = scan(get_deadletter(), ["orders"])
    assert report.stored == 3 and report.unsettled == 0
    assert ns.entities["orders/$deadletterqueue"] == []  # completed after the store write
    (group,) = api.list_groups(READER, {}).body["groups"]
    assert group["count"] == 3 and group["entity"] == "servicebus:fake-sb/orders"
    assert len(receiver.received) == 1
    message = api.show_group(READER, group["id"], {}).body["messages"][0]
    assert message["properties"]["correlation_id"].startswith("corr-")
    assert message["properties"]["time_to_live"] == 3600
    assert message["sequenceNumber"] >= 1000 and message["deliveryCount"] == 11
    assert message["applicationProperties"]["attempt"] in (0, 1, 2)
    job = api.request_replay(OPERATOR, json.dumps({"group": group["id"]}).encode()).body["id"]
    assert run_job(job) == "succeeded"
    sent = ns.sent["orders"]
    assert sorted(m.message_id for m in sent) == ["order-0", "order-1", "order-2"]
    for m in sent:
        i = int(m.message_id.split("-")[1])
        assert m.correlation_id == f"corr-{i}" and m.subject == "order.created"
        assert m.content_type == "application/json" and m.session_id == f"s-{i % 3}"
        assert m.reply_to == "replies" and m.time_to_live == timedelta(hours=1)
        assert b"".join(m.body) == json.dumps({"order": i}).encode()
        props = m.application_properties
        assert "DeadLetterReason" not in props and "DeadLetterErrorDescription" not in props
        assert props["tenant"] == "contoso" and props["attempt"] == i
        assert props["ratio"] == 0.5 and props["flag"] is True
        assert props["pitcrew-replay-attempt"] == 1
        assert props["pitcrew-replay-of"].startswith(group["id"])


def test_lock_lost_before_settle_is_ingested_once(ns: FakeNamespace) -> None:
    dead_letter_orders(ns, 2)
    dl = get_deadletter()
    real_put = dl.store.put_many
    clock = ns.clock_handle  # type: ignore[attr-defined]

    def slow_put(items: Any) -> Any:
        result = real_put(items)
        clock.now += 31  # the store write outlived the lock
        return result

    dl.store.put_many = slow_put  # type: ignore[method-assign]
    (first,) = scan(dl, ["orders"])
    assert first.stored == 2 and first.unsettled == 2
    assert len(ns.entities["orders/$deadletterqueue"]) == 2  # still at the source: not lost
    dl.store.put_many = real_put  # type: ignore[method-assign]
    clock.now += 31  # the locks taken meanwhile lapse too
    (second,) = scan(dl, ["orders"])
    assert second.stored == 0 and second.already_stored == 2 and second.unsettled == 0
    assert ns.entities["orders/$deadletterqueue"] == []
    (group,) = list(dl.store.groups())
    assert group.count == 2


def test_new_message_ids_are_recorded_and_linked(ns: FakeNamespace) -> None:
    dead_letter_orders(ns, 2)
    dl = get_deadletter()
    scan(dl, ["orders"])
    ids = [m.id for m in dl.store.in_group(next(dl.store.groups()).id)]
    body = {"messages": ids, "messageId": "new"}
    job = api.request_replay(OPERATOR, json.dumps(body).encode()).body["id"]
    assert run_job(job) == "succeeded"
    sent = {m.application_properties["pitcrew-replay-of"]: m for m in ns.sent["orders"]}
    for failed_id in ids:
        stored = dl.store.get(failed_id)
        message = sent[failed_id]
        assert message.message_id == stored.sent_message_id
        assert message.message_id != stored.properties["message_id"]
        assert (message.application_properties["pitcrew-original-message-id"]
                == stored.properties["message_id"])


def test_subscription_dead_letters_replay_to_the_topic_marked_for_the_subscription(
        ns: FakeNamespace) -> None:
    ns.dead_letter("events/subscriptions/billing", b"{}", "MaxDeliveryCountExceeded", "",
                   message_id="e-1")
    dl = get_deadletter()
    scan(dl, ["billing"])
    group = next(dl.store.groups()).id
    job = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    assert run_job(job) == "succeeded"
    (sent,) = ns.sent["topics/events"]
    assert sent.application_properties["pitcrew-replay-subscription"] == "billing"


def test_send_failures_retry_then_hand_back_marked(ns: FakeNamespace) -> None:
    dead_letter_orders(ns, 2)
    dl = get_deadletter()
    scan(dl, ["orders"])
    group = next(dl.store.groups()).id
    job = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    ns.fail_sends = 1
    from pitcrew.errors import RetryLater

    with pytest.raises(RetryLater):
        run_job(job)
    _lapse_lease(job)
    assert run_job(job) == "succeeded"
    statuses = Counter(m.status for m in dl.store.in_group(group))
    assert statuses == {"replayed": 2}
    # The failed send may have reached the broker: the resend is marked.
    assert all(m.application_properties.get("pitcrew-possible-duplicate") for m in
               ns.sent["orders"])


def _lapse_lease(job: str) -> None:
    from pitcrew.deadletter.replay import KIND

    state = get_deadletter().state
    run = state.get_run(KIND, job)
    assert run is not None
    run.data["leaseUntil"] = None
    state.save_run(run)


class Killed(BaseException):
    """The process dies: nothing after this runs, no cleanup, no except Exception."""


@pytest.mark.parametrize("kill_after", [1, 23, 37])
def test_replay_killed_mid_batch_resumes_with_nothing_lost(ns: FakeNamespace,
                                                           kill_after: int) -> None:
    """Service Bus target: the messages themselves show which copies are marked."""
    dead_letter_orders(ns, 60)
    dl = get_deadletter()
    scan(dl, ["orders"])
    group = next(dl.store.groups()).id
    body = {"group": group, "batchSize": 10, "rate": 500}
    job = api.request_replay(OPERATOR, json.dumps(body).encode()).body["id"]
    from tests.integration.fake_servicebus import FakeSender

    real_send = FakeSender.send_messages
    calls = {"n": 0}

    def dying_send(self: FakeSender, batch: Any) -> None:
        real_send(self, batch)  # the broker has them...
        calls["n"] += len(batch)
        if calls["n"] >= kill_after:
            raise Killed  # ...and the process dies before settling

    FakeSender.send_messages = dying_send  # type: ignore[method-assign]
    try:
        with pytest.raises(Killed):
            run_job(job)
    finally:
        FakeSender.send_messages = real_send  # type: ignore[method-assign]
    _lapse_lease(job)
    assert run_job(job) == "succeeded"
    counts = Counter(m.message_id for m in ns.sent["orders"])
    assert set(counts) == {f"order-{i}" for i in range(60)}  # none lost
    for message_id, n in counts.items():
        if n > 1:
            copies = [m for m in ns.sent["orders"] if m.message_id == message_id]
            assert n == 2 and any(
                c.application_properties.get("pitcrew-possible-duplicate") for c in copies)
    view = api.show_replay(READER, job).body
    assert view["counts"]["sent"] == 60
    assert view["counts"]["possibleDuplicates"] == sum(1 for n in counts.values() if n > 1)
    assert Counter(m.status for m in dl.store.in_group(group)) == {"replayed": 60}


def test_storage_replay_killed_mid_batch_every_message_counted(ns: FakeNamespace,
                                                               unique_name: str) -> None:
    """Azurite target: count every message at the queue; duplicates only where the store
    marks them possible duplicates."""
    bodies = [f"work-{i}" for i in range(45)]
    poison(unique_name, bodies)
    dl = get_deadletter()
    scan(dl, ["work"])
    group = next(g for g in dl.store.groups() if g.source == "work").id
    job = api.request_replay(OPERATOR, json.dumps(
        {"group": group, "batchSize": 8, "rate": 500}).encode()).body["id"]
    from pitcrew.azure.queues import QueueSender

    real = QueueSender._send_one
    calls = {"n": 0}

    def dying(self: QueueSender, item: Any) -> Any:
        result = real(self, item)
        calls["n"] += 1
        if calls["n"] == 20:
            raise Killed
        return result

    QueueSender._send_one = dying  # type: ignore[method-assign]
    try:
        with pytest.raises(Killed):
            run_job(job)
    finally:
        QueueSender._send_one = real  # type: ignore[method-assign]
    _lapse_lease(job)
    clock = FakeClock()
    assert run_job(job, clock) == "succeeded"
    import base64

    arrived = Counter(base64.b64decode(m).decode() for m in drain(unique_name))
    assert set(arrived) == set(bodies)
    marked = {dl.store.body(m.id).decode() for m in dl.store.in_group(group)
              if m.possible_duplicate}
    marked = {base64.b64decode(b).decode() for b in marked}
    assert {b for b, n in arrived.items() if n > 1} <= marked
    assert all(n <= 2 for n in arrived.values())
    assert Counter(m.status for m in dl.store.in_group(group)) == {"replayed": 45}


def test_pause_resume_cancel(ns: FakeNamespace) -> None:
    dead_letter_orders(ns, 30)
    dl = get_deadletter()
    scan(dl, ["orders"])
    group = next(dl.store.groups()).id
    job = api.request_replay(OPERATOR, json.dumps(
        {"group": group, "batchSize": 5}).encode()).body["id"]
    paused = api.control_replay(OPERATOR, job, "pause")
    assert paused.status == 200 and paused.body["status"] == "paused"
    assert run_job(job) == "paused"
    assert "orders" not in ns.sent
    assert api.control_replay(OPERATOR, job, "resume").body["status"] == "queued"
    # Pause requested while running: the worker stops at the next batch.
    from pitcrew.deadletter.replay import ReplayWorker

    worker = ReplayWorker(dl, job, clock=FakeClock(), sleep=lambda s: None)
    real_replay = worker._replay
    seen = {"batches": 0}

    def replay_then_pause(run: Any, batch: Any, limiter: Any) -> None:
        real_replay(run, batch, limiter)
        seen["batches"] += 1
        if seen["batches"] == 2:
            api.control_replay(OPERATOR, job, "pause")

    worker._replay = replay_then_pause  # type: ignore[method-assign]
    assert worker.run() == "paused"
    assert len(ns.sent["orders"]) == 10
    api.control_replay(OPERATOR, job, "resume")
    api.control_replay(OPERATOR, job, "cancel")
    assert api.show_replay(READER, job).body["status"] == "cancelled"
    assert run_job(job) == "cancelled"
    assert len(ns.sent["orders"]) == 10
    assert Counter(m.status for m in dl.store.in_group(group)) == {"replayed": 10, "failed": 20}


def test_dry_run_sends_nothing(ns: FakeNamespace) -> None:
    dead_letter_orders(ns, 4)
    dl = get_deadletter()
    scan(dl, ["orders"])
    group = next(dl.store.groups()).id
    job = api.request_replay(OPERATOR, json.dumps(
        {"group": group, "dryRun": True}).encode()).body["id"]
    assert run_job(job) == "succeeded"
    view = api.show_replay(READER, job).body
    assert view["counts"]["planned"] == 4 and view["counts"]["sent"] == 0
    assert "orders" not in ns.sent
    assert Counter(m.status for m in dl.store.in_group(group)) == {"failed": 4}


def test_servicebus_event_and_depth_alert_start_an_ingest(ns: FakeNamespace) -> None:
    from pitcrew.intake import api as core_api
    from tests.conftest import SAMPLES

    dead_letter_orders(ns, 2)
    alert = (SAMPLES / "common-alert-metric.json").read_text().replace("sample-sb", "fake-sb")
    result = core_api.receive_alert({}, alert.encode())
    assert result.status == 200 and "orders: 2 new" in result.body["detail"]
    ns.dead_letter("events/subscriptions/billing", b"{}", "Boom", "", message_id="e-9")
    event = (SAMPLES / "servicebus-deadletter-available.eventgrid.json").read_text()
    event = event.replace("sample-sb", "fake-sb").replace('"topicName": "orders"',
                                                          '"topicName": "events"')
    result = core_api.receive_events("POST", {"content-type": "application/json"},
                                     event.encode())
    assert result.status == 200, result.body
    assert "billing: 1 new" in result.body["events"][0]["detail"]
