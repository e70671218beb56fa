"""One bad dead letter never blocks its source, and a crash between store and count loses no
count: each scenario scans twice (the second scan must change nothing)."""

from __future__ import annotations

import json
import time

import pytest

import pitcrew.azure.queues as queues
from pitcrew.deadletter.ingest import scan
from pitcrew.deadletter.scans import ScanWorker, get_scan, request_scan, scan_view
from pitcrew.runtime import get_runtime
from tests.integration.dlq_support import get_deadletter
from tests.integration.test_deadletter_storage import poison, queue_names  # noqa: F401
from tests.integration.test_replay_jobs import ns  # noqa: F401

GOOD = {"id": "good-1", "eventType": "X.Y", "subject": "s", "data": {}, "dataVersion": "1",
        "eventTime": "2026-01-01T00:00:00Z", "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 3}


def _counts(dl):
    return sorted(g.count for g in dl.store.groups())


@pytest.mark.parametrize("name,blob", [
    ("empty_array", b"[]"),
    ("infinite_attempts", b'[{"id": "a", "deadLetterReason": "R", "deliveryAttempts": 1e999}]'),
    ("huge_attempts", b'[{"id": "a", "deadLetterReason": "R", "deliveryAttempts": 1e300}]'),
    ("long_event_type", json.dumps([{**GOOD, "id": "a", "eventType": "T" * 70000}]).encode()),
    ("long_id", json.dumps([{**GOOD, "id": "i" * 40000}]).encode()),
    ("long_subject", json.dumps([{**GOOD, "id": "a", "subject": "\U0001f600" * 40000}]).encode()),
])
def test_a_bad_event_grid_blob_does_not_block_the_good_one(queue_names, name, blob):  # noqa: F811
    container = get_runtime().storage_service("blob").get_container_client(queue_names)
    container.create_container()
    container.upload_blob("SUB/2026/1/1/1/aaa.json", blob)
    container.upload_blob("SUB/2026/1/1/1/zzz.json", json.dumps([GOOD]).encode())
    dl = get_deadletter()
    first = scan(dl, ["egdl"])
    assert [b.name for b in container.list_blobs()] == []
    assert first[0].received == 2 and first[0].stored == 2 and first[0].refused == 0
    assert sum(_counts(dl)) == 2
    second = scan(dl, ["egdl"])
    assert second[0].received == 0
    assert sum(_counts(dl)) == 2


def test_a_blob_holding_an_empty_array_is_kept_whole_as_unreadable(queue_names):  # noqa: F811
    container = get_runtime().storage_service("blob").get_container_client(queue_names)
    container.create_container()
    container.upload_blob("SUB/2026/1/1/1/aaa.json", b"[]")
    dl = get_deadletter()
    scan(dl, ["egdl"])
    scan(dl, ["egdl"])
    (group,) = list(dl.store.groups())
    (message,) = list(dl.store.in_group(group.id))
    assert message.reason == "UnreadableDeadLetterBlob"
    assert json.loads(dl.store.body(message.id))["_raw"] == "[]"
    assert group.count == 1


def test_numbers_that_do_not_fit_are_absent(queue_names):  # noqa: F811
    container = get_runtime().storage_service("blob").get_container_client(queue_names)
    container.create_container()
    container.upload_blob("SUB/2026/1/1/1/aaa.json",
                          b'[{"id": "a", "deadLetterReason": "R", "deliveryAttempts": 1e999,'
                          b' "publishTime": "0001-01-01T00:00:00-23:00"}]')
    dl = get_deadletter()
    scan(dl, ["egdl"])
    (group,) = list(dl.store.groups())
    (message,) = list(dl.store.in_group(group.id))
    assert message.delivery_count is None and message.enqueued_time is None
    # The event as published keeps what the row could not.
    assert json.loads(dl.store.body(message.id))["id"] == "a"


def test_a_service_bus_message_too_large_to_store_stays_alone(ns):  # noqa: F811
    ns.dead_letter("orders", b'{"bad": 1}', "R", "boom", message_id="bad",
                   application_properties={"big": "x" * 40000})
    for i in range(3):
        ns.dead_letter("orders", b'{"ok": 1}', "R", "boom", message_id=f"ok-{i}")
    dl = get_deadletter()
    first = scan(dl, ["orders"])  # no exception: the others are stored and settled
    assert (first[0].stored, first[0].refused) == (3, 1)
    refused = first[0].to_dict()["refusedMessages"]
    assert len(refused) == 1 and "exceed" in refused[0]["reason"]
    assert "could not be stored" in (first[0].left_at_source() or "")
    assert len(ns.entity("orders/$deadletterqueue")) == 1
    assert _counts(dl) == [3]
    ns.clock_handle.now += 60  # the refused message's lock expires
    second = scan(dl, ["orders"])
    assert (second[0].received, second[0].stored, second[0].refused) == (1, 0, 1)
    assert len(ns.entity("orders/$deadletterqueue")) == 1
    assert _counts(dl) == [3]

    # An operator's scan job (twice): the message it could not store is no success; the job
    # fails, naming the message and why, and its view counts it.
    for _ in range(2):
        ns.clock_handle.now += 60
        job = request_scan(dl, ["orders"], "user:ops@example.com").run_id
        assert ScanWorker(dl, job).run() == "failed"
        view = scan_view(get_scan(dl, job))
        assert (view["status"], view["refused"], view["stored"]) == ("failed", 1, 0), view
        (report,) = view["reports"]
        assert report["refused"] == 1 and "exceed" in report["refusedMessages"][0]["reason"]
        assert "could not be stored" in view["errors"]["orders"], view["errors"]


def test_a_crash_between_store_and_count_is_counted_by_the_rescan(
        queue_names, monkeypatch, receiver):  # noqa: F811
    monkeypatch.setattr(queues, "_LEASE_SECONDS", 1)
    dl = get_deadletter()
    poison(queue_names, [json.dumps({"order": i}) for i in range(5)])
    scan(dl, ["orders"])
    (group,) = list(dl.store.groups())
    assert group.count == 5 and len(receiver.received) == 1
    poison(queue_names, [json.dumps({"order": i}) for i in range(5, 12)])
    real = type(dl.store).record_arrivals

    def crash(self, *args, **kwargs):
        raise RuntimeError("instance died after the store write")

    monkeypatch.setattr(type(dl.store), "record_arrivals", crash)
    with pytest.raises(RuntimeError):
        scan(dl, ["orders"])
    monkeypatch.setattr(type(dl.store), "record_arrivals", real)
    assert dl.store.count_in_group(group.id) == 12
    time.sleep(2)  # the leases lapse: the 7 are back in the poison queue
    scan(dl, ["orders"])
    group = dl.store.group(group.id)
    assert (group.count, group.notice_level, group.notice_sent) == (12, 10, 10)
    assert len(receiver.received) == 2
    scan(dl, ["orders"])
    assert dl.store.group(group.id).count == 12
    assert len(receiver.received) == 2


def test_a_rescan_of_counted_but_unsettled_messages_does_not_count_them_again(
        queue_names, monkeypatch, receiver):  # noqa: F811
    monkeypatch.setattr(queues, "_LEASE_SECONDS", 1)
    dl = get_deadletter()
    poison(queue_names, [json.dumps({"order": i}) for i in range(5)])
    def lost(self, *args):
        raise RuntimeError("settle lost")

    monkeypatch.setattr(queues.PoisonQueueSource, "_delete", lost)
    for _ in range(2):
        report = scan(dl, ["orders"])[0]
        assert report.unsettled == 5
        time.sleep(2)
    (group,) = list(dl.store.groups())
    assert group.count == 5 and len(receiver.received) == 1

