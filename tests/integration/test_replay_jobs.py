"""Replay jobs that end, count honestly, keep their rate per message and show their heartbeat
(issues 9.4, 10.13, 10.16, 10.17, 10.18). The store is Azurite; Service Bus is the fake at the
SDK boundary; time is a fake clock wherever the worker waits."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from pitcrew.bootstrap import reset_services
from pitcrew.deadletter import api
from pitcrew.deadletter.ingest import scan
from pitcrew.deadletter.model import utcnow
from pitcrew.deadletter.replay import HEARTBEAT, KIND, LEASE, ReplayWorker, job_view, resume_jobs
from pitcrew.errors import RetryLater
from pitcrew.runtime import get_runtime, reset_runtime
from pitcrew.state import RunRecord
from tests.integration.dlq_support import get_deadletter
from tests.integration.fake_servicebus import FakeNamespace, FakeSender
from tests.integration.test_deadletter_storage import (
    OPERATOR,
    READER,
    FakeClock,
    audit,
    drain,
    poison,
    run_job,
    write_policy,
)

NS = "fake-sb.servicebus.windows.net"


@pytest.fixture
def ns(pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> FakeNamespace:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    write_policy(pitcrew_env, (
        "deadletter:\n"
        "  sources:\n"
        f"    - {{name: orders, type: servicebus, namespace: {NS}, queue: orders}}\n"
        f"    - {{name: work, type: storage-queue, queue: {unique_name}}}\n"
        f"    - {{name: egdl, type: eventgrid-blob, container: {unique_name}, "
        f"replay_to: 'queue:{unique_name}-eg'}}\n"
    ))
    return _namespace()


def _namespace() -> FakeNamespace:
    clock = FakeClock()
    namespace = FakeNamespace(clock, lock_seconds=30)
    namespace.clock_handle = clock  # type: ignore[attr-defined]
    get_runtime().cached(f"servicebus:{NS}:", lambda: namespace)
    return namespace


def _orders(ns: FakeNamespace, count: int) -> str:
    for i in range(count):
        ns.dead_letter("orders", json.dumps({"order": i}).encode(), "ProcessingFailed", "boom",
                       message_id=f"order-{i}")
    dl = get_deadletter()
    scan(dl, ["orders"])
    return next(g.id for g in dl.store.groups() if g.source == "orders")


def _replay(body: dict[str, Any]) -> str:
    result = api.request_replay(OPERATOR, json.dumps(body).encode())
    assert result.status == 202, result.body
    return str(result.body["id"])


def _view(job: str) -> dict[str, Any]:
    return api.show_replay(READER, job).body


def _adds_up(view: dict[str, Any]) -> bool:
    c = view["counts"]
    return (c["sent"] + c["skipped"] + c["failed"] + c["planned"] + view["remaining"]
            == view["total"])


# ------------------------------------------------------------------ 9.4: jobs that end


def test_a_target_whose_connection_is_not_configured_is_refused_when_requested(
        pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    monkeypatch.delenv("NOPE_SETTING", raising=False)
    write_policy(pitcrew_env, (
        "deadletter:\n  sources:\n"
        f"    - {{name: work, type: storage-queue, queue: {unique_name}, "
        f"replay_to: 'queue:{unique_name}-r@NOPE_SETTING'}}\n"))
    poison(unique_name, ["w-1"])
    dl = get_deadletter()
    scan(dl, ["work"])
    group = next(dl.store.groups()).id
    result = api.request_replay(OPERATOR, json.dumps({"group": group}).encode())
    assert result.status == 400 and result.body["field"] == "target"
    assert "NOPE_SETTING" in result.body["message"]
    assert api.list_replays(READER, {}).body["jobs"] == []


def test_a_connection_lost_before_the_job_runs_fails_it_and_releases_its_messages(
        pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    monkeypatch.setenv("OTHER_STORAGE", "UseDevelopmentStorage=true")
    write_policy(pitcrew_env, (
        "deadletter:\n  sources:\n"
        f"    - {{name: work, type: storage-queue, queue: {unique_name}, "
        f"replay_to: 'queue:{unique_name}-r@OTHER_STORAGE'}}\n"))
    poison(unique_name, ["w-1", "w-2"])
    dl = get_deadletter()
    scan(dl, ["work"])
    group = next(dl.store.groups()).id
    job = _replay({"group": group})
    monkeypatch.delenv("OTHER_STORAGE")  # the setting is gone by the time the worker runs
    reset_runtime()
    reset_services()
    assert run_job(job) == "failed"
    view = _view(job)
    assert "OTHER_STORAGE" in view["error"] and view["stale"] is False
    assert view["counts"]["failed"] == 0 and view["remaining"] == 2 and _adds_up(view)
    dl = get_deadletter()
    assert Counter(m.status for m in dl.store.in_group(group)) == {"failed": 2}
    assert run_job(job) == "failed"  # terminal: a later message does nothing
    assert job not in resume_jobs(dl)


def test_an_unreachable_namespace_fails_the_job_after_bounded_tries(ns: FakeNamespace) -> None:
    group = _orders(ns, 3)
    job = _replay({"group": group})
    ns.unreachable = True
    for attempt in range(1, 5):
        with pytest.raises(RetryLater):
            run_job(job)
        view = _view(job)
        assert view["status"] == "queued" and view["leaseUntil"] is None, attempt
    assert run_job(job) == "failed"
    view = _view(job)
    assert "ServiceBusConnectionError" in view["error"]
    assert view["counts"]["failed"] == 3 and view["remaining"] == 0 and _adds_up(view)
    # Handed back, marked: they were claimed, and a send might have reached the broker.
    messages = list(get_deadletter().store.in_group(group))
    assert {(m.status, m.possible_duplicate) for m in messages} == {("failed", True)}
    assert "orders" not in ns.sent
    # A later replay takes them (they are no longer stuck `replaying`).
    ns.unreachable = False
    again = _replay({"group": group})
    assert run_job(again) == "succeeded" and len(ns.sent["orders"]) == 3


# ------------------------------------------------------------------ 10.13: counts that add up


def test_counts_add_up_with_members_already_replayed_archived_and_missing(
        ns: FakeNamespace) -> None:
    group = _orders(ns, 7)
    dl = get_deadletter()
    ids = sorted(m.id for m in dl.store.in_group(group))
    assert run_job(_replay({"messages": ids[:3]})) == "succeeded"
    api.archive(OPERATOR, json.dumps({"messages": [ids[3]]}).encode())
    state = dl.state
    seen: list[dict[str, Any]] = []
    real_save = state.save_run

    def watching(run: RunRecord) -> RunRecord:
        saved = real_save(run)
        if run.kind == KIND and run.data.get("total") is not None:
            seen.append(job_view(saved))
        return saved

    state.save_run = watching  # type: ignore[method-assign]
    try:
        job = _replay({"group": group, "batchSize": 2})
        assert run_job(job) == "succeeded"
        explicit = _replay({"messages": ids, "batchSize": 3})
        dl.store.delete(dl.store.get(ids[0]))  # purged after the request, before the walk
        assert run_job(explicit) == "succeeded"
    finally:
        state.save_run = real_save  # type: ignore[method-assign]
    view = _view(job)
    assert view["total"] == 7 and view["remaining"] == 0
    assert view["counts"]["sent"] == 3 and view["counts"]["skipped"] == 4
    assert view["skippedBy"] == {"replayed": 3, "archived": 1}
    assert all(_adds_up(v) for v in seen) and len(seen) > 3
    assert all(v["counts"]["sent"] + v["counts"]["skipped"] <= v["total"] for v in seen)
    view = _view(explicit)
    assert view["total"] == 7 and view["counts"]["skipped"] == 7 and _adds_up(view)
    assert view["skippedBy"] == {"replayed": 5, "archived": 1, "missing": 1}


def test_a_dry_run_counts_what_it_would_send(ns: FakeNamespace) -> None:
    group = _orders(ns, 4)
    job = _replay({"group": group, "dryRun": True})
    assert run_job(job) == "succeeded"
    view = _view(job)
    assert view["counts"]["planned"] == 4 and view["total"] == 4 and _adds_up(view)
    assert "orders" not in ns.sent


# ------------------------------------------------------------------ 10.16: unreadable blobs


def test_an_unreadable_event_grid_blob_is_refused_with_a_reason_never_sent_wrapped(
        ns: FakeNamespace, unique_name: str) -> None:
    dl = get_deadletter()
    container = get_runtime().storage_service("blob").get_container_client(unique_name)
    container.create_container()
    container.upload_blob("KV-EXPIRY/2026/11/21/7/bad.json", b"\x00not json at all")
    scan(dl, ["egdl"])
    group = next(g.id for g in dl.store.groups() if g.source == "egdl")
    job = _replay({"group": group})
    assert run_job(job) == "succeeded"
    view = _view(job)
    assert view["counts"]["failed"] == 1 and view["counts"]["sent"] == 0 and _adds_up(view)
    assert "no Event Grid events" in view["failures"][0]["reason"]
    # The job walked its selection, but replayed nothing: the record does not say succeeded.
    (record,) = [r for r in audit("dlq.replay") if r["correlationId"] == job]
    assert record["outcome"] == "failed"
    assert record["details"]["reason"] == ("1 message(s) could not be replayed (see the job's "
                                           "failures); 0 sent")
    with contextlib.suppress(ResourceNotFoundError):  # never created: nothing was sent
        assert drain(f"{unique_name}-eg") == []  # nothing like {"_raw": ...} went out
    assert Counter(m.status for m in dl.store.in_group(group)) == {"failed": 1}


# ------------------------------------------------------------------ 10.17: rate per message


def test_rate_two_with_a_batch_of_32_spaces_every_message(ns: FakeNamespace) -> None:
    group = _orders(ns, 6)
    job = _replay({"group": group, "rate": 2, "batchSize": 32})
    clock: FakeClock = ns.clock_handle  # type: ignore[attr-defined]
    assert run_job(job, clock) == "succeeded"
    times = ns.sent_at["orders"]
    assert len(times) == 6
    assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(times))


# ------------------------------------------------------------------ 10.18: heartbeat, takeover


def test_the_lease_is_renewed_during_long_rate_limited_waits(ns: FakeNamespace) -> None:
    group = _orders(ns, 4)
    job = _replay({"group": group, "rate": 0.05, "batchSize": 32})  # 20 s between messages
    dl = get_deadletter()
    clock: FakeClock = ns.clock_handle  # type: ignore[attr-defined]
    state = dl.state
    renewals: list[float] = []
    real_save = state.save_run

    def watching(run: RunRecord) -> RunRecord:
        if run.kind == KIND and run.status == "running":
            renewals.append(clock.now)
        return real_save(run)

    state.save_run = watching  # type: ignore[method-assign]
    try:
        assert ReplayWorker(dl, job, clock=clock, sleep=clock.sleep).run() == "succeeded"
    finally:
        state.save_run = real_save  # type: ignore[method-assign]
    assert clock.now >= 60
    gaps = [b - a for a, b in itertools.pairwise(renewals)]
    assert max(gaps) <= HEARTBEAT + 1e-9 < LEASE.total_seconds()


class Killed(BaseException):
    """The process dies: nothing after this runs."""


def test_a_dead_worker_shows_stale_and_is_taken_over(ns: FakeNamespace,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    group = _orders(ns, 5)
    job = _replay({"group": group, "batchSize": 2, "rate": 500})
    real_send = FakeSender.send_messages

    def dying(self: FakeSender, batch: Any) -> None:
        real_send(self, batch)
        raise Killed

    monkeypatch.setattr(FakeSender, "send_messages", dying)
    with pytest.raises(Killed):
        run_job(job)
    monkeypatch.setattr(FakeSender, "send_messages", real_send)
    view = _view(job)
    assert view["status"] == "running" and view["stale"] is False
    assert 0 <= view["heartbeatAgeSeconds"] < LEASE.total_seconds()
    dl = get_deadletter()
    assert resume_jobs(dl) == []  # alive as far as anyone can tell
    # 45 seconds later, as the dead worker left it.
    state = dl.state
    run = state.get_run(KIND, job)
    assert run is not None
    now = utcnow()
    run.data["heartbeatAt"] = (now - timedelta(seconds=45)).isoformat()
    run.data["leaseUntil"] = (now - timedelta(seconds=45) + LEASE).isoformat()
    state.save_run(run)
    view = _view(job)
    assert view["stale"] is True and view["heartbeatAgeSeconds"] >= 45
    assert view["counts"] == {"sent": 0, "skipped": 0, "failed": 0, "possibleDuplicates": 0,
                              "planned": 0}
    assert resume_jobs(dl) == [job]
    assert run_job(job) == "succeeded"
    view = _view(job)
    assert view["counts"]["sent"] == 5 and view["counts"]["possibleDuplicates"] == 2
    assert view["stale"] is False and view["heartbeatAgeSeconds"] is None
    sent = Counter(m.message_id for m in ns.sent["orders"])
    assert set(sent) == {f"order-{i}" for i in range(5)}


def test_the_timer_checks_a_running_job_again_when_its_lease_ends(
        ns: FakeNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies between two ticks is replaced within a minute: the tick before its
    death scheduled a check for the moment its lease would end."""
    import pitcrew.azure.queues as queues

    group = _orders(ns, 1)
    job = _replay({"group": group})
    dl = get_deadletter()
    state = dl.state
    run = state.get_run(KIND, job)
    assert run is not None
    run.status = "running"
    run.data["leaseUntil"] = (utcnow() + timedelta(seconds=25)).isoformat()
    run.data["heartbeatAt"] = (utcnow() - timedelta(seconds=5)).isoformat()
    state.save_run(run)
    checks: list[tuple[str, float]] = []
    real = queues.enqueue_job

    def recording(service: Any, queue: str, job_id: str, *, delay: float = 0) -> None:
        checks.append((job_id, delay))
        real(service, queue, job_id, delay=delay)

    monkeypatch.setattr(queues, "enqueue_job", recording)
    assert resume_jobs(dl) == []
    ((checked, delay),) = checks
    assert checked == job and 25 <= delay <= 27
    assert LEASE.total_seconds() + 1 < 60


def test_a_worker_out_of_time_hands_the_job_straight_to_the_next(ns: FakeNamespace) -> None:
    group = _orders(ns, 6)
    job = _replay({"group": group, "batchSize": 2, "rate": 500})
    dl = get_deadletter()
    clock: FakeClock = ns.clock_handle  # type: ignore[attr-defined]

    def slow_sleep(seconds: float) -> None:
        clock.sleep(seconds + 1)

    worker = ReplayWorker(dl, job, budget=0.5, clock=clock, sleep=slow_sleep)
    assert worker.run() == "continue"
    view = _view(job)
    assert view["status"] == "queued" and view["leaseUntil"] is None and _adds_up(view)
    assert run_job(job) == "succeeded"  # not "busy" behind a lease nobody holds
    assert _view(job)["counts"]["sent"] == 6
