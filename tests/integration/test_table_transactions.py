"""Entity-group transactions written on the wire by pitcrew.azure.tables.changeset: the body is
azure-core's byte for byte, a success is one round trip with the SDK's results, and every
refusal surfaces as the SDK's own error with nothing applied, the first time and the second."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from pitcrew.azure.tables import changeset, transactions
from pitcrew.runtime import azurite_connection_string

# Azurite's public development account (the body test sends nothing; it only builds requests).
CONNECTION = azurite_connection_string()


def _every_kind(etag: str) -> list[tuple[Any, ...]]:
    from azure.core import MatchConditions
    from azure.data.tables import EdmType, EntityProperty, UpdateMode

    return [
        ("create", {"PartitionKey": "p", "RowKey": "r1", "When": datetime(2026, 1, 2, tzinfo=UTC),
                    "Bytes": b"\x00\xff", "Small": 7, "Big": EntityProperty(2**40, EdmType.INT64),
                    "Ratio": 0.5, "Flag": True, "Id": uuid.UUID(int=1),
                    "Text": "é \u202e 🔥 \"quoted\" \\ \n line"}),
        ("update", {"PartitionKey": "p", "RowKey": "r2", "S": "x"},
         {"mode": UpdateMode.MERGE, "etag": etag,
          "match_condition": MatchConditions.IfNotModified}),
        ("update", {"PartitionKey": "p", "RowKey": "r3", "S": "y"}, {"mode": UpdateMode.REPLACE}),
        ("upsert", {"PartitionKey": "p", "RowKey": "it's 4"}, {"mode": UpdateMode.REPLACE}),
        ("upsert", {"PartitionKey": "p", "RowKey": "r5", "S": "z"}),
        ("delete", {"PartitionKey": "p", "RowKey": "r6"}),
        ("delete", {"PartitionKey": "p", "RowKey": "r7"},
         {"etag": etag, "match_condition": MatchConditions.IfNotModified}),
    ]


def _azure_core_body(table: Any, operations: list[tuple[Any, ...]]) -> bytes:
    """What azure-data-tables' own `_batch_send` puts on the wire for these operations."""
    from azure.core.pipeline import Pipeline
    from azure.core.rest import HttpRequest
    from azure.data.tables._policies import StorageHeadersPolicy

    requests = changeset._operations(table, operations)
    policies = [StorageHeadersPolicy()]
    inner = HttpRequest("POST", "")
    inner.set_multipart_mixed(*requests, policies=policies, boundary="changeset_C")
    outer = HttpRequest("POST", "http://host/$batch")
    outer.set_multipart_mixed(inner, policies=policies, enforce_https=False, boundary="batch_B")
    Pipeline(None, [])._prepare_multipart(outer)  # type: ignore[arg-type]
    return bytes(outer.content)


def _dates(body: bytes) -> bytes:
    return re.sub(rb"(x-ms-date|Date): [^\r]+", rb"\1: D", body)


def test_the_body_is_what_azure_core_writes_for_every_kind_of_operation() -> None:
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(CONNECTION, "demo")
    operations = _every_kind('W/"datetime\'2026-01-01T00%3A00%3A00Z\'"')
    ours = changeset.envelope(changeset._operations(table, operations), batch="batch_B",
                              changeset="changeset_C", date="D")
    assert _dates(ours) == _dates(_azure_core_body(table, operations))
    assert ours.count(b"Content-ID:") == len(operations)


def test_an_answer_of_another_shape_is_an_error_never_a_success() -> None:
    from azure.core.exceptions import HttpResponseError

    class Answer:
        def __init__(self, content_type: str, content: bytes) -> None:
            self.headers = {"Content-Type": content_type}
            self.content = content
            self.status_code = 202
            self.reason = "Accepted"
            self.request = None

        def text(self, encoding: str | None = None) -> str:
            return self.content.decode()

    ok = (b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
          b"--c\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n"
          b"ETag: W/\"1\"\r\n\r\n\r\n--c--\r\n--b--\r\n")
    answer = Answer("multipart/mixed; boundary=b", ok)
    assert changeset.read_answer(answer, expected=1) == [{"etag": 'W/"1"'}]  # type: ignore[arg-type]
    for content_type, body, expected in (
        ("application/json", b"{}", 1),  # not multipart
        ("multipart/mixed; boundary=b", ok[:-8], 1),  # cut short
        ("multipart/mixed; boundary=b", ok.replace(b"HTTP/1.1 204", b"XTTP 204"), 1),
        ("multipart/mixed; boundary=b", ok, 2),  # fewer answers than operations
    ):
        with pytest.raises(HttpResponseError):
            changeset.read_answer(Answer(content_type, body), expected=expected)  # type: ignore[arg-type]


@pytest.fixture
def table(storage_connection_string: str, unique_name: str) -> Iterator[Any]:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(storage_connection_string)
    yield service.create_table(unique_name)
    service.delete_table(unique_name)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The method and path of every request the Table SDK puts on the wire."""
    from azure.core.pipeline.transport import RequestsTransport

    seen: list[str] = []
    real = RequestsTransport.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        seen.append(f"{request.method} {request.url.rsplit('/', 1)[-1]}")
        return real(self, request, **kwargs)

    monkeypatch.setattr(RequestsTransport, "send", send)
    return seen


@pytest.mark.azurite
def test_every_kind_of_operation_is_applied_in_one_round_trip_with_the_sdks_results(
    table: Any, sent: list[str]
) -> None:
    for key in ("r2", "r3", "r6", "r7"):
        table.create_entity({"PartitionKey": "p", "RowKey": key, "S": "old", "Keep": "k"})
    etag = table.get_entity("p", "r2").metadata["etag"]
    operations = _every_kind(etag)
    operations[-1] = ("delete", {"PartitionKey": "p", "RowKey": "r7"},
                      dict(operations[-1][2], etag=table.get_entity("p", "r7").metadata["etag"]))
    sent.clear()

    results = transactions.submit(table, operations)

    assert sent == ["POST $batch"]
    assert len(results) == len(operations)
    rows = {row["RowKey"]: row for row in table.list_entities()}
    assert sorted(rows) == ["it's 4", "r1", "r2", "r3", "r5"]
    assert rows["r1"]["Text"] == "é \u202e 🔥 \"quoted\" \\ \n line"
    assert rows["r1"]["Bytes"] == b"\x00\xff" and rows["r1"]["Big"].value == 2**40
    assert rows["r2"]["S"] == "x" and rows["r2"]["Keep"] == "k"  # merged
    assert rows["r3"]["S"] == "y" and "Keep" not in rows["r3"]  # replaced
    for operation, result in zip(operations, results, strict=True):
        if operation[0] != "delete":
            assert result["etag"] == rows[operation[1]["RowKey"]].metadata["etag"]


@pytest.mark.azurite
def test_a_refused_transaction_is_the_sdks_error_with_nothing_applied_every_time(
    table: Any, sent: list[str]
) -> None:
    from azure.data.tables import TableTransactionError

    table.create_entity({"PartitionKey": "p", "RowKey": "002"})
    operations = [("create", {"PartitionKey": "p", "RowKey": f"{n:03d}"}) for n in range(5)]
    for attempt in range(2):
        sent.clear()
        with pytest.raises(TableTransactionError) as refused:
            transactions.submit(table, operations)
        assert refused.value.status_code == 409
        assert transactions.failed_index(refused.value, len(operations)) == 2
        assert sent == ["POST $batch", "POST $batch"], attempt  # ours, then the SDK's
        assert [row["RowKey"] for row in table.list_entities()] == ["002"]

    # Resumed as callers do: the named row dropped, the rest inserted.
    inserted = transactions.insert_new(table, [op[1] for op in operations])
    assert sorted(entity["RowKey"] for entity, _ in inserted) == ["000", "001", "003", "004"]
    assert len(list(table.list_entities())) == 5


@pytest.mark.azurite
def test_a_stale_etag_and_a_missing_table_are_the_sdks_errors(
    table: Any, storage_connection_string: str
) -> None:
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError
    from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode

    table.create_entity({"PartitionKey": "p", "RowKey": "a", "S": "1"})
    etag = table.get_entity("p", "a").metadata["etag"]
    table.update_entity({"PartitionKey": "p", "RowKey": "a", "S": "2"})
    stale = ("update", {"PartitionKey": "p", "RowKey": "a", "S": "3"},
             {"mode": UpdateMode.MERGE, "etag": etag,
              "match_condition": MatchConditions.IfNotModified})
    with pytest.raises(TableTransactionError) as refused:
        transactions.submit(table, [("create", {"PartitionKey": "p", "RowKey": "b"}), stale])
    assert refused.value.status_code == 412
    assert transactions.failed_index(refused.value, 2) == 1
    assert [(r["RowKey"], r["S"]) for r in table.list_entities()] == [("a", "2")]

    missing = TableServiceClient.from_connection_string(
        storage_connection_string).get_table_client("t" + uuid.uuid4().hex[:12])
    operation = ("create", {"PartitionKey": "p", "RowKey": "a"})
    with pytest.raises(HttpResponseError) as ours:
        transactions.submit(missing, [operation])
    with pytest.raises(HttpResponseError) as sdks:
        missing.submit_transaction([operation])
    assert type(ours.value) is type(sdks.value)
    assert (ours.value.status_code, ours.value.error_code) == (404, "TableNotFound")
    assert sdks.value.error_code == "TableNotFound"


@pytest.mark.azurite
def test_concurrent_transactions_on_the_same_rows_apply_exactly_one_each(table: Any) -> None:
    from azure.data.tables import TableTransactionError

    operations = [("create", {"PartitionKey": "p", "RowKey": f"{n:03d}"}) for n in range(50)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def race() -> None:
        try:
            transactions.submit(table, operations)
            outcome = "applied"
        except TableTransactionError as exc:
            outcome = f"refused {exc.status_code}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["applied"] + ["refused 409"] * 5
    assert len(list(table.list_entities())) == 50


@pytest.mark.azurite
def test_without_the_sdks_internals_the_sdks_own_path_is_taken(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def moved(*args: Any) -> Any:
        raise ImportError("azure.data.tables._table_batch moved")

    monkeypatch.setattr(changeset, "_operations", moved)
    results = transactions.submit(table, [("create", {"PartitionKey": "p", "RowKey": "a"})])
    assert results[0]["etag"] == table.get_entity("p", "a").metadata["etag"]


@pytest.mark.azurite
def test_a_transaction_near_the_size_limit_goes_whole_and_one_over_it_is_refused(
    table: Any,
) -> None:
    from azure.data.tables import RequestTooLargeError, TableTransactionError

    # Within Azure's limits (a string property up to 64 KiB, a row up to 1 MiB) but six times
    # larger on the wire: the SDK's JSON writes each character as \u00e9.
    text = "é" * 30_000
    rows = [{"PartitionKey": "p", "RowKey": f"{n:03d}", "A": text, "B": text, "C": text,
             "D": b"\xff" * 40_000} for n in range(transactions.MAX_OPERATIONS)]
    chunks = list(transactions.chunked([("create", row) for row in rows]))
    assert len(chunks) > 1  # cut by MAX_BYTES before the service's 4 MiB
    for chunk in chunks:
        assert len(transactions.submit(table, chunk)) == len(chunk)
    stored = list(table.list_entities())
    assert len(stored) == len(rows) and all(row["A"] == text for row in stored)

    # Past the service's limit: the SDK's own error, nothing applied.
    over = [("create", dict(row, PartitionKey="q")) for row in rows[:10]]
    with pytest.raises((RequestTooLargeError, TableTransactionError)) as refused:
        transactions.submit(table, over)
    assert refused.value.status_code == 413
    assert len(list(table.query_entities("PartitionKey eq 'q'"))) == 0
