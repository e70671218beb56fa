"""The batched paths of dead-letter ingest and replay on Azurite: bodies kept in the row (no
blob) when small, rows written in entity-group transactions, claims and settles in
transactions; a duplicate inside a batch, a crash between the store write and the settle, runs
repeated and run by two workers at once: nothing lost, nothing stored or sent twice."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from typing import Any

import pytest

from pitcrew.azure.queues import PoisonQueueSource
from pitcrew.azure.tables.deadletter import INLINE_MAX
from pitcrew.deadletter import api
from pitcrew.deadletter.ingest import scan
from pitcrew.deadletter.model import Captured
from pitcrew.runtime import get_runtime
from tests.integration.dlq_support import get_deadletter
from tests.integration.test_deadletter_storage import (  # noqa: F401 (fixture)
    OPERATOR,
    FakeClock,
    drain,
    poison,
    queue,
    queue_names,
    run_job,
)


@pytest.fixture
def orders(queue_names: str) -> str:  # noqa: F811
    """The policy's `orders` storage-queue source; its queue's name."""
    return queue_names


class Killed(BaseException):
    """The process dies: nothing after this runs, no cleanup, no except Exception."""


def blobs() -> set[str]:
    from azure.core.exceptions import ResourceNotFoundError

    prefix = get_runtime().settings.table_prefix.lower()[:50]
    container = get_runtime().storage_service("blob").get_container_client(
        f"{prefix}-dlq-bodies")
    try:
        return {b.name for b in container.list_blobs()}
    except ResourceNotFoundError:
        return set()


def source(q: str) -> PoisonQueueSource:
    config = get_deadletter().policy.source("orders")
    return PoisonQueueSource(get_runtime().storage_service("queue"), name="orders", queue=q,
                             entity=config.entity)


def replay(group: str, **extra: Any) -> str:
    accepted = api.request_replay(OPERATOR, json.dumps(
        {"group": group, "rate": 500, "batchSize": 100, **extra}).encode())
    assert accepted.status == 202, accepted.body
    return str(accepted.body["id"])


def texts(q: str) -> Counter[str]:
    return Counter(base64.b64decode(m).decode() for m in drain(q))


def test_small_bodies_live_in_the_row_large_ones_in_blobs(orders: str) -> None:
    q = orders
    small = [f"order-{i}" for i in range(40)]
    large = "L" * (INLINE_MAX + 10)  # base64 in the queue: larger still
    poison(q, [*small, large])
    dl = get_deadletter()
    (report,) = scan(dl, ["orders"])
    assert report.stored == 41 and report.unsettled == 0
    stored = {m.id: m for m in dl.store.in_group(next(dl.store.groups()).id)}
    big = [m for m in stored.values() if m.body_size > INLINE_MAX]
    assert len(big) == 1 and blobs() == {big[0].id}  # one blob: only the large body
    for message in stored.values():
        assert base64.b64decode(dl.store.body(message.id)).decode() in [*small, large]
    job = replay(next(iter(stored.values())).group)
    assert run_job(job) == "succeeded"
    assert texts(q) == Counter([*small, large])


def test_a_batch_of_bodies_over_4_mb_is_stored_in_several_transactions(orders: str
                                                                      ) -> None:
    q = orders
    bodies = [f"{i:03d}" + "x" * (INLINE_MAX * 3 // 4 - 8) for i in range(100)]  # ~32 KB b64
    poison(q, bodies)
    dl = get_deadletter()
    while scan(dl, ["orders"])[0].received:
        pass
    group = next(dl.store.groups())
    assert group.count == 100 and blobs() == set()
    assert run_job(replay(group.id)) == "succeeded"
    assert texts(q) == Counter(bodies)


def test_a_batch_where_one_row_exists_stores_the_rest_and_settles_all(orders: str
                                                                     ) -> None:
    q = orders
    poison(q, [f"m-{i}" for i in range(10)])
    dl = get_deadletter()
    (batch,) = list(source(q).receive(32))
    first = batch[3]
    assert dl.store.put_many([(first.message, first.body)]) == {first.message.id}
    before = dl.store.get(first.message.id)
    # The earlier ingest crashed before settling: every message is back at the source.
    for captured in batch:
        queue(f"{q}-poison").update_message(
            captured.message.properties["message_id"], pop_receipt=_pop(captured),
            visibility_timeout=0)
    (report,) = scan(dl, ["orders"])
    assert report.received == 10 and report.stored == 9 and report.already_stored == 1
    assert report.unsettled == 0 and drain(f"{q}-poison") == []
    assert dl.store.get(first.message.id).etag == before.etag  # left as it was
    assert len(list(dl.store.in_group(first.message.group))) == 10


def test_a_crash_between_the_store_write_and_the_settle_loses_and_doubles_nothing(
        orders: str, monkeypatch: pytest.MonkeyPatch) -> None:
    q = orders
    bodies = [f"c-{i}" for i in range(70)]
    poison(q, bodies)
    dl = get_deadletter()
    deleted = {"n": 0}
    held: list[tuple[str, str]] = []
    real = PoisonQueueSource._delete

    def dying(self: PoisonQueueSource, message_id: str, pop: str) -> None:
        with lock:
            if deleted["n"] >= 40:  # the first batch settled, the second's store write done
                held.append((message_id, pop))
                raise Killed
            deleted["n"] += 1
        real(self, message_id, pop)

    lock = threading.Lock()

    monkeypatch.setattr(PoisonQueueSource, "_delete", dying)
    with pytest.raises(Killed):
        scan(dl, ["orders"])
    monkeypatch.setattr(PoisonQueueSource, "_delete", real)
    # What was stored but not settled comes back when its receive lease lapses.
    assert held
    for message_id, pop in held:
        queue(f"{q}-poison").update_message(message_id, pop_receipt=pop, visibility_timeout=0)
    while scan(dl, ["orders"])[0].received:
        pass
    assert drain(f"{q}-poison") == []
    group = next(dl.store.groups())
    members = list(dl.store.in_group(group.id))
    assert len(members) == 70 and group.count == 70  # each stored once, counted once
    assert run_job(replay(group.id)) == "succeeded"
    assert texts(q) == Counter(bodies)  # each sent exactly once


def test_ingest_and_replay_twice_do_nothing_the_second_time(orders: str) -> None:
    q = orders
    bodies = [f"t-{i}" for i in range(50)]
    poison(q, bodies)
    dl = get_deadletter()
    assert scan(dl, ["orders"])[0].stored == 50
    assert scan(dl, ["orders"])[0].received == 0
    group = next(dl.store.groups()).id
    job = replay(group)
    assert run_job(job) == "succeeded"
    assert run_job(job) == "succeeded"  # the job is done: a duplicate queue message
    again = replay(group)
    assert run_job(again) == "succeeded"
    view = api.show_replay(OPERATOR, again).body
    assert view["counts"]["sent"] == 0 and view["skippedBy"] == {"replayed": 50}
    assert texts(q) == Counter(bodies)


def test_two_workers_ingest_and_replay_at_once_each_message_once(orders: str) -> None:
    q = orders
    bodies = [f"w-{i}" for i in range(150)]
    poison(q, bodies)
    dl = get_deadletter()
    errors: list[BaseException] = []

    def both(work: Any) -> None:
        def guarded() -> None:
            try:
                work()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=guarded) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    both(lambda: scan(dl, ["orders"]))
    assert drain(f"{q}-poison") == []
    group = next(dl.store.groups())
    assert group.count == 150 and len(list(dl.store.in_group(group.id))) == 150
    # Two jobs over the same group race for every message: the claim decides, once.
    jobs = [replay(group.id, batchSize=20), replay(group.id, batchSize=20)]
    runs = iter(jobs)
    lock = threading.Lock()

    def run_one() -> None:
        with lock:
            job = next(runs)
        clock = FakeClock()
        assert run_job(job, clock) == "succeeded"

    both(run_one)
    assert texts(q) == Counter(bodies)
    views = [api.show_replay(OPERATOR, j).body for j in jobs]
    assert sum(v["counts"]["sent"] for v in views) == 150
    assert all(v["counts"]["possibleDuplicates"] == 0 for v in views)


def _pop(captured: Captured) -> str:
    cells = [c.cell_contents for c in captured.settle.__closure__ or ()]
    return next(c for c in cells if isinstance(c, str)
                and c != captured.message.properties["message_id"])


def test_a_transition_merges_only_its_columns_and_skips_a_row_changed_meanwhile(
        orders: str) -> None:
    q = orders
    poison(q, [f"s-{i}" for i in range(6)])
    dl = get_deadletter()
    scan(dl, ["orders"])
    group = next(dl.store.groups()).id
    read = list(dl.store.in_group(group))
    # Someone else changes one row after we read it.
    dl.store.update(dl.store.get(read[2].id).copy(status="archived", archived_by="ops"))
    claims = [m.copy(status="replaying", replay_job="job-1", replay_attempt=1,
                     sent_message_id="x", replayed_to=f"queue:{q}") for m in read]
    done = dl.store.update_many(claims, fields=("status", "replay_job", "replay_attempt",
                                                "sent_message_id", "replayed_to"))
    assert [m.id for m in done] == [m.id for i, m in enumerate(read) if i != 2]
    assert dl.store.get(read[2].id).status == "archived"  # theirs kept
    for message in done:
        stored = dl.store.get(message.id)
        assert stored.status == "replaying" and stored.replay_job == "job-1"
        assert stored.etag == message.etag  # the new ETag came back with the transaction
        # Columns the transition did not name are intact: body, preview, properties.
        assert stored.body == message.body and stored.body is not None
        assert stored.preview == message.preview and stored.properties == message.properties
