"""Replay jobs that fail end failed or hand their messages back, never stuck: a cancel after a
transient send failure, a body that is gone, an unexpected error in the worker, a target queue
that does not exist, numbers no float holds; and control asked twice answers the same. The
store and the queues are Azurite; Service Bus is the fake at the SDK boundary."""

from __future__ import annotations

import base64
import contextlib
import json
from collections import Counter
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from pitcrew.deadletter import api
from pitcrew.deadletter.ingest import scan
from pitcrew.deadletter.replay import BODY_MISSING, CANCELLED_IN_DOUBT, ReplayWorker
from pitcrew.errors import RetryLater
from tests.integration.dlq_support import get_deadletter
from tests.integration.fake_servicebus import FakeNamespace
from tests.integration.test_deadletter_storage import (
    OPERATOR,
    READER,
    audit,
    drain,
    poison,
    queue,
    queue_names,
    run_job,
    write_policy,
)
from tests.integration.test_replay_jobs import _adds_up, _orders, _replay, _view, ns

__all__ = ["ns", "queue_names"]  # the fixtures, used by name


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()  # as the poison helper wrote it


def _statuses(group: str) -> Counter[str]:
    return Counter(m.status for m in get_deadletter().store.in_group(group))


# ------------------------------------------------------------------ cancel after a failed send


def test_a_cancel_after_a_transient_send_failure_hands_the_messages_back(
        ns: FakeNamespace) -> None:
    group = _orders(ns, 3)
    job = _replay({"group": group})
    ns.fail_sends = 1
    with pytest.raises(RetryLater):
        run_job(job)
    assert _statuses(group) == {"replaying": 3}
    for _ in range(2):  # asked twice: the same answer, nothing handed back twice
        answer = api.control_replay(OPERATOR, job, "cancel")
        assert answer.status == 200 and answer.body["status"] == "cancelled"
        assert answer.body["counts"]["failed"] == 3 and answer.body["remaining"] == 0
        assert {f["reason"] for f in answer.body["failures"]} == {CANCELLED_IN_DOUBT}
    assert run_job(job) == "cancelled"
    messages = list(get_deadletter().store.in_group(group))
    assert {m.status for m in messages} == {"failed"}
    assert all(m.possible_duplicate for m in messages)  # the failed send may have arrived
    # The group replays again: every message goes, marked.
    again = _replay({"group": group})
    assert run_job(again) == "succeeded"
    view = _view(again)
    assert view["counts"]["sent"] == 3 and view["counts"]["possibleDuplicates"] == 3
    assert view["outcome"] == "succeeded" and view["reason"] is None and _adds_up(view)
    assert len(ns.sent["orders"]) == 3


def test_a_replay_that_sent_nothing_says_so_on_the_job(ns: FakeNamespace) -> None:
    group = _orders(ns, 3)
    dl = get_deadletter()
    for message in list(dl.store.in_group(group)):  # all held by another replay job
        dl.store.update(message.copy(status="replaying", replay_job="20260101000000-deadbeef"))
    for _ in range(2):
        job = _replay({"group": group})
        assert run_job(job) == "succeeded"  # the walk ended; what it did is the outcome
        view = _view(job)
        assert view["counts"]["sent"] == 0 and view["skippedBy"] == {"another job": 3}
        assert view["outcome"] == "skipped"
        assert view["reason"] == "nothing was sent: every message was skipped (3 another job)"
    assert "orders" not in ns.sent


# ------------------------------------------------------------------ a body that is gone


def test_a_message_whose_body_is_gone_fails_alone_and_the_rest_are_sent(
        queue_names: str) -> None:
    q = queue_names
    poison(q, ["small-1", "L" * 40000, "small-2"])
    with contextlib.suppress(ResourceExistsError):
        queue(q).create_queue()  # the workload's queue (the replay target) exists
    dl = get_deadletter()
    scan(dl, ["orders"])
    group = next(dl.store.groups()).id
    big = next(m for m in dl.store.in_group(group) if m.body_size > 32768)
    dl.store.bodies.delete(big.id)  # a purge racing the replay
    job = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    for _ in range(2):
        assert run_job(job) == "succeeded"
        view = api.show_replay(READER, job).body
        assert view["status"] == "succeeded" and view["leaseUntil"] is None
        assert view["counts"]["sent"] == 2 and view["counts"]["failed"] == 1, view
        assert view["failures"] == [{"message": big.id, "reason": BODY_MISSING}]
        assert view["outcome"] == "failed" and _adds_up(view)
    assert sorted(drain(q)) == sorted(_b64(b) for b in ("small-1", "small-2"))
    assert dl.store.get(big.id).status == "failed"
    assert _statuses(group) == {"replayed": 2, "failed": 1}


def test_an_unexpected_error_releases_the_lease_records_it_and_ends_the_job(
        ns: FakeNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    group = _orders(ns, 2)
    job = _replay({"group": group})

    def broken(self: ReplayWorker, *_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ReplayWorker, "_sort", broken)
    for attempt in range(1, 5):  # handed back each time: queued, no lease, the error said
        with pytest.raises(RetryLater):
            run_job(job)
        view = _view(job)
        assert view["status"] == "queued" and view["leaseUntil"] is None
        assert view["error"] == "RuntimeError: boom"
        assert get_deadletter().state.get_run("dlq-replay", job).data["sendFailures"] == attempt
    for _ in range(2):
        assert run_job(job) == "failed"
        view = _view(job)
        assert view["status"] == "failed" and view["error"] == "RuntimeError: boom"
        assert view["leaseUntil"] is None
    assert _statuses(group) == {"failed": 2}
    (record,) = [r for r in audit("dlq.replay") if r["correlationId"] == job]
    assert record["outcome"] == "failed" and record["details"]["error"] == "RuntimeError: boom"


# ------------------------------------------------------------------ a target that is missing


def test_a_replay_to_a_queue_that_does_not_exist_fails_at_once_and_creates_nothing(
        pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    q = unique_name
    write_policy(pitcrew_env, (
        "deadletter:\n  replay:\n    allow_redirect: true\n"
        f"    targets: ['queue:{q}-retry']\n"
        f"  sources:\n    - {{name: work, type: storage-queue, queue: {q}}}\n"))
    poison(q, ["w-1", "w-2"])
    dl = get_deadletter()
    scan(dl, ["work"])
    group = next(dl.store.groups()).id
    job = api.request_replay(OPERATOR, json.dumps(
        {"group": group, "target": f"queue:{q}-retry"}).encode()).body["id"]
    for _ in range(2):  # permanent: failed on the first run, not retried as transient
        assert run_job(job) == "failed"
        view = api.show_replay(READER, job).body
        assert view["status"] == "failed" and view["leaseUntil"] is None
        assert f"queue:{q}-retry" in view["error"] and "does not exist" in view["error"]
        assert view["counts"]["failed"] == 2 and view["counts"]["sent"] == 0
    assert dl.state.get_run("dlq-replay", job).data["sendFailures"] == 1
    assert _statuses(group) == {"failed": 2}
    with pytest.raises(ResourceNotFoundError):  # pitcrew created nothing
        queue(f"{q}-retry").get_queue_properties()
    assert [r["outcome"] for r in audit("dlq.replay") if r["correlationId"] == job] == ["failed"]
    # Once the queue exists, the same replay goes.
    with contextlib.suppress(ResourceExistsError):
        queue(f"{q}-retry").create_queue()
    again = api.request_replay(OPERATOR, json.dumps(
        {"group": group, "target": f"queue:{q}-retry"}).encode()).body["id"]
    assert run_job(again) == "succeeded"
    assert sorted(drain(f"{q}-retry")) == sorted(_b64(b) for b in ("w-1", "w-2"))


# ------------------------------------------------------------------ numbers and control


@pytest.mark.parametrize("field", ["rate", "batchSize"])
def test_a_number_no_float_holds_is_a_400_naming_the_field(ns: FakeNamespace, field: str) -> None:
    group = _orders(ns, 1)
    for raw in ("1" + "0" * 400, "1e400"):
        body = f'{{"group": "{group}", "{field}": {raw}}}'.encode()
        for _ in range(2):
            answer = api.request_replay(OPERATOR, body)
            assert answer.status == 400 and answer.body["field"] == field, answer.body
    assert api.list_replays(READER, {}).body["jobs"] == []


def test_resume_asked_twice_answers_the_same_and_does_nothing_again(ns: FakeNamespace) -> None:
    group = _orders(ns, 2)
    job = _replay({"group": group})
    assert api.control_replay(OPERATOR, job, "pause").body["status"] == "paused"
    for _ in range(3):
        answer = api.control_replay(OPERATOR, job, "resume")
        assert answer.status == 200 and answer.body["status"] == "queued", answer.body
    records = [r for r in audit("dlq.replay.resume") if r["correlationId"] == job]
    assert [r["outcome"] for r in records] == ["succeeded", "skipped", "skipped"]
    assert records[1]["details"]["reason"] == "the job is already queued"
    assert run_job(job) == "succeeded" and len(ns.sent["orders"]) == 2
    # A finished job is not resumed.
    assert api.control_replay(OPERATOR, job, "resume").status == 400
