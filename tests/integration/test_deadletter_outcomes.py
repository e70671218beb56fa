"""Nothing is audited (or answered) as succeeded that did not happen: an ingest that could not
settle at its source, a scan job that left messages there, an archive or a purge that changed
nothing, a replay job that sent nothing and a pause only asked for each say so, with the count
and the reason, however often they run. The store is Azurite; Service Bus is the fake at the
SDK boundary (its locks lapse when the fake clock moves past them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pitcrew.bootstrap import get_services
from pitcrew.deadletter import api
from pitcrew.deadletter.events import DeadletterAvailable
from pitcrew.deadletter.hooks import handle_servicebus_deadletter
from pitcrew.deadletter.ingest import scan
from pitcrew.deadletter.ports import DeadletterServices
from pitcrew.deadletter.replay import KIND
from pitcrew.deadletter.scans import ScanWorker, request_scan
from tests.integration.dlq_support import get_deadletter
from tests.integration.fake_servicebus import FakeNamespace
from tests.integration.test_deadletter_storage import OPERATOR, READER, audit, run_job
from tests.integration.test_replay_jobs import _orders, ns  # noqa: F401

DLQ = "orders/$deadletterqueue"


def _dead_letter(ns: FakeNamespace, count: int) -> None:  # noqa: F811
    for i in range(count):
        ns.dead_letter("orders", json.dumps({"order": i}).encode(), "ProcessingFailed", "boom",
                       message_id=f"order-{i}")


def _settles_fail(dl: DeadletterServices, ns: FakeNamespace,  # noqa: F811
                  monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every store write outlives the Service Bus lock, so every settle after it fails (the
    source cannot be settled); returns the real write to put back."""
    real_put = dl.store.put_many
    clock = ns.clock_handle  # type: ignore[attr-defined]

    def slow_put(items: Any) -> Any:
        created = real_put(items)
        clock.now += 31  # past the 30 s lock
        return created

    monkeypatch.setattr(dl.store, "put_many", slow_put)
    return real_put


def _lapse(ns: FakeNamespace) -> None:  # noqa: F811
    """The locks a run took last (on the messages it was handed back) lapse."""
    ns.clock_handle.now += 31  # type: ignore[attr-defined]


def _event() -> DeadletterAvailable:
    return DeadletterAvailable(id="e-1", namespace="fake-sb", queue="orders", topic=None,
                               subscription=None)


# ------------------------------------------------------------------ ingest


def test_an_ingest_that_could_not_settle_is_audited_failed_with_the_count(
        ns: FakeNamespace, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    _dead_letter(ns, 3)
    dl = get_deadletter()
    real_put = _settles_fail(dl, ns, monkeypatch)
    # Twice, through the Event Grid event's handler and the scan timer: each run says the
    # same, and neither claims the messages are done with.
    answer = handle_servicebus_deadletter(_event(), get_services())
    assert answer == ("ingested orders: 3 new, 3 not settled at the source (stored; the next "
                      "ingest settles them)")
    _lapse(ns)
    (again,) = scan(dl, ["orders"])
    assert again.received == 3 and again.already_stored == 3 and again.unsettled == 3
    records = audit("dlq.ingest")
    assert [r["outcome"] for r in records] == ["failed", "failed"]
    for record in records:
        details = record["details"]
        assert details["received"] == 3 and details["unsettled"] == 3
        assert details["reason"].startswith("3 of 3 message(s) could not be settled at the "
                                            "source")
    # Not lost: still at the source, stored once, counted once.
    assert len(ns.entities[DLQ]) == 3
    (group,) = list(dl.store.groups())
    assert group.count == 3 and len(list(dl.store.in_group(group.id))) == 3
    # Once the source can be settled, the next ingest settles them and says succeeded.
    monkeypatch.setattr(dl.store, "put_many", real_put)
    _lapse(ns)
    (done,) = scan(dl, ["orders"])
    assert done.unsettled == 0 and done.already_stored == 3 and ns.entities[DLQ] == []
    settled = [r for r in audit("dlq.ingest") if r["outcome"] == "succeeded"]
    assert len(settled) == 1 and settled[0]["details"]["unsettled"] == 0
    assert "reason" not in settled[0]["details"]
    assert next(dl.store.groups()).count == 3


def test_a_scan_job_that_left_messages_at_the_source_is_not_succeeded(
        ns: FakeNamespace, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    _dead_letter(ns, 3)
    dl = get_deadletter()
    real_put = _settles_fail(dl, ns, monkeypatch)
    for _ in range(2):
        _lapse(ns)
        job = request_scan(dl, ["orders"], "user:ops@example.com").run_id
        assert ScanWorker(dl, job).run() == "failed"
        view = api.show_scan(READER, job).body
        assert view["status"] == "failed" and view["unsettled"] == 3
        assert "3 message(s) could not be settled at the source" in view["errors"]["orders"]
        (record,) = [r for r in audit("dlq.scan") if r["correlationId"] == job]
        assert record["outcome"] == "failed" and record["details"]["unsettled"] == 3
        assert "could not be settled" in record["details"]["errors"]["orders"]
    assert len(ns.entities[DLQ]) == 3
    monkeypatch.setattr(dl.store, "put_many", real_put)
    _lapse(ns)
    job = request_scan(dl, ["orders"], "user:ops@example.com").run_id
    assert ScanWorker(dl, job).run() == "done"
    view = api.show_scan(READER, job).body
    assert view["status"] == "succeeded" and view["unsettled"] == 0 and view["errors"] == {}
    (record,) = [r for r in audit("dlq.scan") if r["correlationId"] == job]
    assert record["outcome"] == "succeeded" and ns.entities[DLQ] == []


# ------------------------------------------------------------------ archive, replay, purge


def test_an_archive_or_a_replay_that_did_nothing_is_skipped_with_the_reason(
        ns: FakeNamespace) -> None:  # noqa: F811
    group = _orders(ns, 2)
    dl = get_deadletter()
    first, second = sorted(m.id for m in dl.store.in_group(group))
    one = api.archive(OPERATOR, json.dumps({"messages": [first]}).encode())
    assert one.status == 200 and one.body == {"archived": 1, "skipped": 0}
    for _ in range(2):  # archived already: nothing happens, and the record says so
        again = api.archive(OPERATOR, json.dumps({"messages": [first]}).encode())
        assert again.status == 200 and again.body == {"archived": 0, "skipped": 1}
    records = audit("dlq.archive")
    assert sorted(r["outcome"] for r in records) == ["skipped", "skipped", "succeeded"]
    for record in (r for r in records if r["outcome"] == "skipped"):
        assert record["details"]["archived"] == 0 and record["details"]["messages"] == []
        assert record["details"]["reason"] == ("no message was failed (1 archived); only a "
                                               "failed message is archived")
    assert api.archive(OPERATOR, json.dumps({"group": group}).encode()).body["archived"] == 1
    for _ in range(2):
        assert api.archive(OPERATOR, json.dumps({"group": group}).encode()).body == {
            "archived": 0, "skipped": 0}
    by_group = [r for r in audit("dlq.archive") if r["target"] == f"dlq-group:{group}"]
    assert sorted(r["outcome"] for r in by_group) == ["skipped", "skipped", "succeeded"]
    assert {r["details"].get("reason") for r in by_group if r["outcome"] == "skipped"} == {
        "the group has no failed message"}
    # A replay of the group now has nothing to send: the job walked it, the record says
    # nothing was sent and why.
    for _ in range(2):
        job = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
        assert run_job(job) == "succeeded"
        view = api.show_replay(READER, job).body
        assert view["counts"]["sent"] == 0 and view["counts"]["skipped"] == 2
        (record,) = [r for r in audit("dlq.replay") if r["correlationId"] == job]
        assert record["outcome"] == "skipped"
        assert record["details"]["reason"] == ("nothing was sent: every message was skipped "
                                               "(2 archived)")
    assert "orders" not in ns.sent
    assert second in {m.id for m in dl.store.in_group(group, status="archived")}


def test_a_replay_that_sent_is_still_succeeded(ns: FakeNamespace) -> None:  # noqa: F811
    group = _orders(ns, 2)
    job = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    assert run_job(job) == "succeeded" and len(ns.sent["orders"]) == 2
    (record,) = [r for r in audit("dlq.replay") if r["correlationId"] == job]
    assert record["outcome"] == "succeeded" and "reason" not in record["details"]


def test_a_purge_that_deleted_nothing_is_skipped_with_the_reason(
        ns: FakeNamespace) -> None:  # noqa: F811
    group = _orders(ns, 2)
    dl = get_deadletter()
    for message in list(dl.store.in_group(group)):  # both held by a replay job
        dl.store.update(message.copy(status="replaying", replay_job="20260101000000-deadbeef"))
    for _ in range(2):
        held = api.purge(OPERATOR, json.dumps({"group": group}).encode())
        assert held.status == 200 and held.body["purged"] == 0 and held.body["skipped"] == 2
        old = api.purge(OPERATOR, b'{"before": "2000-01-02T00:00:00Z"}')
        assert old.status == 200 and old.body["purged"] == 0 and old.body["count"] == 0
    records = audit("dlq.purge.now")
    assert len(records) == 4 and {r["outcome"] for r in records} == {"skipped"}
    reasons = sorted(r["details"]["reason"] for r in records)
    assert reasons == ["all 2 matching message(s) are held by a replay"] * 2 + [
        "no message matched"] * 2
    assert len(list(dl.store.in_group(group))) == 2


# ------------------------------------------------------------------ control


def test_a_pause_of_a_running_job_is_recorded_as_asked_not_done(
        ns: FakeNamespace) -> None:  # noqa: F811
    group = _orders(ns, 2)
    dl = get_deadletter()
    job = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    run = dl.state.get_run(KIND, job)
    assert run is not None
    run.status = "running"  # a worker has it
    dl.state.save_run(run)
    for _ in range(2):
        asked = api.control_replay(OPERATOR, job, "pause")
        assert asked.status == 200 and asked.body["status"] == "running"
        assert asked.body["requested"] == "pause"
    records = audit("dlq.replay.pause")
    assert [r["outcome"] for r in records] == ["queued", "queued"]
    assert all(r["details"] == {"status": "running", "requested": "pause"} for r in records)
    # A pause of a job nothing runs takes effect at once: that one is done.
    other = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    assert api.control_replay(OPERATOR, other, "pause").body["status"] == "paused"
    (done,) = [r for r in audit("dlq.replay.pause") if r["correlationId"] == other]
    assert done["outcome"] == "succeeded" and done["details"] == {"status": "paused"}


def test_cancel_or_pause_asked_twice_answers_the_same_and_does_nothing_again(
        ns: FakeNamespace) -> None:  # noqa: F811
    group = _orders(ns, 2)
    for action, status in (("cancel", "cancelled"), ("pause", "paused")):
        job = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
        for _ in range(3):
            answer = api.control_replay(OPERATOR, job, action)
            assert answer.status == 200 and answer.body["status"] == status, answer.body
        records = [r for r in audit(f"dlq.replay.{action}") if r["correlationId"] == job]
        assert [r["outcome"] for r in records] == ["succeeded", "skipped", "skipped"]
        assert records[1]["details"]["reason"] == f"the job is already {status}"
    # A job that ended otherwise is still not "cancelled" after the fact.
    done = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    run = get_deadletter().state.get_run(KIND, done)
    assert run is not None
    run.status = "succeeded"
    get_deadletter().state.save_run(run)
    assert api.control_replay(OPERATOR, done, "cancel").status == 400
