"""Concurrent single-row writes to one partition share transactions (GroupCommitTable), and each
caller still gets exactly its own call's answer: its ETag, the SDK's error for its own row, or
the error of a transaction whose outcome is unknown. Against Azurite; the first request of
each scenario is held a moment on the wire so that the others queue behind it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pitcrew.azure.tables.groupcommit import GroupCommitTable

pytestmark = pytest.mark.azurite


@pytest.fixture
def table(storage_connection_string: str, unique_name: str) -> Iterator[Any]:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(storage_connection_string)
    yield service.create_table(unique_name)
    service.delete_table(unique_name)


class Wire:
    """Every request the SDK sends ("METHOD last-path-segment"); the first one held `hold`
    seconds; `fail_batches` $batch requests answered by a connection error instead."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.hold = 0.3
        self.fail_batches = 0
        self.lock = threading.Lock()


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    from azure.core.exceptions import ServiceResponseError
    from azure.core.pipeline.transport import RequestsTransport

    recorded = Wire()
    real = RequestsTransport.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        with recorded.lock:
            first = not recorded.sent
            what = f"{request.method} {request.url.rsplit('/', 1)[-1].split('(')[0]}"
            recorded.sent.append(what)
            fail = what.endswith("$batch") and recorded.fail_batches > 0
            if fail:
                recorded.fail_batches -= 1
        if first:
            time.sleep(recorded.hold)
        if fail:
            raise ServiceResponseError("the answer was lost")
        return real(self, request, **kwargs)

    monkeypatch.setattr(RequestsTransport, "send", send)
    return recorded


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once, each in its own thread; each result or exception, in order. The
    first call starts a moment before the others, so that it holds the partition's slot."""
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    threads[0].start()
    time.sleep(0.05)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a writer never returned"
    return results


def test_concurrent_creates_share_transactions_and_each_gets_its_etag(
    table: Any, wire: Wire
) -> None:
    writer = GroupCommitTable(table, slots=1)
    for round_ in range(2):  # the second time on the same writer, too
        wire.sent.clear()
        rows = [{"PartitionKey": "p", "RowKey": f"{round_}-{n:03d}", "N": n} for n in range(40)]
        results = race([lambda row=row: writer.create_entity(row) for row in rows])
        stored = {r["RowKey"]: r.metadata["etag"] for r in table.list_entities()
                  if r["RowKey"].startswith(f"{round_}-")}
        assert [result["etag"] for result in results] == [stored[r["RowKey"]] for r in rows]
        assert wire.sent[0] == "POST " + table.table_name  # the first went alone
        assert "POST $batch" in wire.sent
        assert len(wire.sent) < len(rows) / 2, wire.sent
    assert writer._partitions == {}  # nothing held once everyone is answered


def test_a_row_that_exists_fails_only_its_own_caller(table: Any, wire: Wire) -> None:
    from azure.core.exceptions import ResourceExistsError

    writer = GroupCommitTable(table, slots=1)
    existing = {3, 7, 19}
    for n in existing:
        table.create_entity({"PartitionKey": "p", "RowKey": f"{n:03d}", "Old": True})
    wire.sent.clear()
    rows = [{"PartitionKey": "p", "RowKey": f"{n:03d}"} for n in range(25)]
    results = race([lambda row=row: writer.create_entity(row) for row in rows])
    failed = {n for n, result in enumerate(results) if isinstance(result, ResourceExistsError)}
    assert failed == existing
    assert all(isinstance(r, dict) and r.get("etag") for n, r in enumerate(results)
               if n not in existing)
    stored = {r["RowKey"]: r for r in table.list_entities()}
    assert len(stored) == 25 and all(stored[f"{n:03d}"]["Old"] for n in existing)


def test_a_stale_etag_fails_only_its_own_caller_and_the_others_merge(
    table: Any, wire: Wire
) -> None:
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError
    from azure.data.tables import UpdateMode

    writer = GroupCommitTable(table, slots=1)
    etags = {n: table.create_entity({"PartitionKey": "p", "RowKey": f"{n:03d}", "Keep": n})["etag"]
             for n in range(20)}
    stale = {5, 11}
    for n in stale:
        table.update_entity({"PartitionKey": "p", "RowKey": f"{n:03d}", "Meanwhile": True},
                            mode=UpdateMode.MERGE)

    def update(n: int) -> Any:
        return writer.update_entity({"PartitionKey": "p", "RowKey": f"{n:03d}", "Done": n},
                                    mode=UpdateMode.MERGE, etag=etags[n],
                                    match_condition=MatchConditions.IfNotModified)

    results = race([lambda n=n: update(n) for n in range(20)])
    failed = {n for n, r in enumerate(results) if isinstance(r, ResourceModifiedError)}
    assert failed == stale
    rows = {int(r["RowKey"]): r for r in table.list_entities()}
    for n, row in rows.items():
        assert row["Keep"] == n  # merged, not replaced
        assert ("Done" in row) == (n not in stale)
        if n not in stale:
            assert results[n]["etag"] == row.metadata["etag"]


def test_the_same_row_from_two_callers_is_created_once(table: Any, wire: Wire) -> None:
    from azure.core.exceptions import ResourceExistsError

    writer = GroupCommitTable(table, slots=1)
    calls = [lambda: writer.create_entity({"PartitionKey": "p", "RowKey": "lead"})]
    calls += [lambda n=n: writer.create_entity({"PartitionKey": "p", "RowKey": "same", "By": n})
              for n in range(6)]
    results = race(calls)
    created = [r for r in results[1:] if isinstance(r, dict)]
    assert len(created) == 1
    assert all(isinstance(r, ResourceExistsError) for r in results[1:] if r not in created)
    assert sorted(r["RowKey"] for r in table.list_entities()) == ["lead", "same"]


def test_an_unknown_outcome_is_every_callers_error_and_the_partition_moves_on(
    table: Any, wire: Wire
) -> None:
    from azure.core.exceptions import ServiceResponseError

    writer = GroupCommitTable(table, slots=1)
    # Every try of the shared transaction loses its answer (the pipeline retries it).
    wire.fail_batches = 100
    rows = [{"PartitionKey": "p", "RowKey": f"{n:03d}"} for n in range(12)]
    results = race([lambda row=row: writer.create_entity(row) for row in rows])
    assert isinstance(results[0], dict)  # the first went alone, before
    queued = results[1:]
    assert all(isinstance(r, ServiceResponseError) for r in queued), queued
    assert len({id(r) for r in queued}) == len(queued)  # each its own exception object
    # Never retried as single calls: their rows are not there.
    assert [r["RowKey"] for r in table.list_entities()] == ["000"]

    wire.fail_batches = 0
    again = race([lambda row=row: writer.create_entity(row) for row in rows[1:]])
    assert all(isinstance(r, dict) for r in again), again
    assert len(list(table.list_entities())) == 12
    assert writer._partitions == {}


def test_a_lone_write_is_one_plain_request_and_reads_go_to_the_table(
    table: Any, wire: Wire
) -> None:
    wire.hold = 0
    writer = GroupCommitTable(table)
    meta = writer.create_entity({"PartitionKey": "p", "RowKey": uuid.uuid4().hex})
    assert wire.sent == ["POST " + table.table_name]
    assert [r.metadata["etag"] for r in writer.list_entities()] == [meta["etag"]]
