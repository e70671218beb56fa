"""GET /api/audit over Azurite: a bounded range, one partition-range query, pages and tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pitcrew.audit import AuditQuery, AuditRecord
from pitcrew.auth import encode_principal
from pitcrew.azure.tables.audit import TableAuditLog
from pitcrew.bootstrap import get_services
from pitcrew.errors import InvalidInput
from pitcrew.http import operator as api
from pitcrew.http.paging import encode_token

pytestmark = pytest.mark.azurite

READER = {"X-MS-CLIENT-PRINCIPAL": encode_principal("alice@contoso.com", ["Reader"])}
START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def reader_env(pitcrew_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    return pitcrew_env


def _record(at: datetime, *, target: str = "kv/db-password", actor: str = "app:pitcrew",
            action: str = "rotate") -> AuditRecord:
    return AuditRecord(actor=actor, action=action, target=target, outcome="succeeded",
                       correlation_id=f"c-{at.isoformat()}", time=at)


def _get(**query: str) -> api.HttpResult:
    return api.list_audit(READER, query)


def _iso(at: datetime) -> str:
    return at.isoformat()


@pytest.fixture
def month(reader_env: Path) -> list[AuditRecord]:
    """One record a day at noon over 31 days, plus one just outside each end of the range."""
    audit = get_services().audit
    inside = [_record(START + timedelta(days=d, hours=12)) for d in range(31)]
    for record in [_record(START - timedelta(seconds=1)), *inside,
                   _record(START + timedelta(days=31))]:
        audit.append(record)
    return inside


# -- 9.3: the range is bounded ---------------------------------------------------------------


@pytest.mark.timeout(60)  # the unbounded version ran one query per day for 3.65 million days
def test_a_range_beyond_31_days_is_a_400_saying_so(reader_env: Path) -> None:
    answer = _get(since="0001-01-01T00:00:00", until="9999-12-31T23:59:59")
    assert answer.status == 400
    assert answer.body["field"] == "since"
    assert "at most 31 days" in answer.body["message"]
    wide = _get(since=_iso(START), until=_iso(START + timedelta(days=31, seconds=1)))
    assert wide.status == 400 and "at most 31 days" in wide.body["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"until": "0001-01-01T00:00:00"}, "until"),  # the default since would be before year 1
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),  # before year 1 in UTC
        ({"until": "tomorrow"}, "until"),
        ({"limit": "1001"}, "limit"),
        ({"actor": "x" * 513}, "actor"),
    ],
)
def test_bad_parameters_are_400s_naming_the_field(
    reader_env: Path, query: dict[str, str], field: str
) -> None:
    answer = _get(**query)
    assert answer.status == 400, answer.body
    assert answer.body["field"] == field


def test_a_31_day_range_is_one_partition_range_query(
    month: list[AuditRecord], storage_connection_string: str, unique_name: str
) -> None:
    from azure.data.tables import TableClient

    requests: list[str] = []
    table = TableClient.from_connection_string(
        storage_connection_string, f"{unique_name}audit",
        raw_request_hook=lambda request: requests.append(request.http_request.url),
    )
    audit = TableAuditLog(table)
    page = audit.page(AuditQuery(since=START, until=START + timedelta(days=31)), limit=1000)
    assert [r.record_id for r in page.items] == [r.record_id for r in month]  # oldest first
    assert page.continuation is None
    assert len(requests) == 1  # one range query, not one per day


# -- paging ------------------------------------------------------------------------------------


def _pages(**query: str) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        answer = _get(**query, **({"continuation": token} if token else {}))
        assert answer.status == 200, answer.body
        yield answer.body
        token = answer.body["continuation"]
        if token is None:
            return
        query = {k: v for k, v in query.items() if k not in ("since", "until")}  # token has them


def test_pages_walk_every_record_once_in_order(month: list[AuditRecord]) -> None:
    pages = list(_pages(since=_iso(START), until=_iso(START + timedelta(days=31)), limit="4"))
    assert len(pages) == 8
    assert all(len(p["records"]) <= 4 for p in pages)
    ids = [r["id"] for p in pages for r in p["records"]]
    assert ids == [r.record_id for r in month]
    assert pages[0]["since"] == "2026-03-01T00:00:00+00:00"


def test_filters_are_applied_by_the_query(reader_env: Path) -> None:
    audit = get_services().audit
    audit.append(_record(START + timedelta(hours=1), actor="user:alice", action="replay"))
    audit.append(_record(START + timedelta(hours=2), actor="user:bob", action="replay",
                         target="sb/orders"))
    audit.append(_record(START + timedelta(hours=3), actor="user:alice", action="rotate"))
    window = {"since": _iso(START), "until": _iso(START + timedelta(days=1))}

    def actions(**filters: str) -> list[tuple[str, str]]:
        body = _get(**window, **filters).body
        return [(r["actor"], r["action"]) for r in body["records"]]

    assert actions(actor="user:alice") == [("user:alice", "replay"), ("user:alice", "rotate")]
    assert actions(action="replay") == [("user:alice", "replay"), ("user:bob", "replay")]
    assert actions(target="sb/orders") == [("user:bob", "replay")]
    assert actions(actor="user:alice", action="rotate") == [("user:alice", "rotate")]


def test_forged_and_foreign_tokens_are_400s(month: list[AuditRecord]) -> None:
    window = {"since": _iso(START), "until": _iso(START + timedelta(days=31))}
    first = _get(**window, limit="2").body
    token = first["continuation"]
    assert token
    # A token only resumes the query that issued it.
    other = _get(**window, limit="2", actor="user:mallory", continuation=token)
    assert other.status == 400 and other.body["field"] == "continuation"
    assert "different query" in other.body["message"]
    state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    forged = [
        "not-a-token",
        encode_token({"PartitionKey": "20260301"}),  # no query, no range
        encode_token({**state, "Extra": "x"}),
        encode_token({**state, "PartitionKey": 7}),
        encode_token({**state, "since": "yesterday"}),
        encode_token({**state, "since": "0001-01-01T00:00:00+00:00"}),  # beyond 31 days
    ]
    for bad in forged:
        answer = _get(limit="2", continuation=bad)
        assert answer.status == 400, (bad, answer.body)
        assert answer.body["field"] in ("continuation", "since"), answer.body


def test_tokens_with_times_out_of_range_are_400s(reader_env: Path) -> None:
    # A forged token's range reaches datetime's edges: converting it to UTC, or going a day
    # back from it, must be a 400 on the token, never a 500.
    for since, until in (
        ("0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00+23:59"),  # before year 1 in UTC
        ("9999-12-31T23:00:00-23:59", "9999-12-31T23:30:00-23:59"),  # after year 9999
        ("0001-01-01T00:00:00", "0001-01-02T00:00:00"),  # no offset: pitcrew never issues it
        ("2026-03-01T00:00:00+00:00", "2026-03-01T00:00:00"),
    ):
        token = encode_token({"PartitionKey": "a", "q": "x", "since": since, "until": until})
        for _ in range(2):  # and again: nothing about the first answer changes the second
            answer = _get(continuation=token)
            assert answer.status == 400, (since, until, answer.body)
            assert answer.body["field"] == "continuation", answer.body


def test_internal_query_reads_across_pages(month: list[AuditRecord]) -> None:
    records = list(get_services().audit.query(since=START, until=START + timedelta(days=31),
                                              limit=10))
    assert [r.record_id for r in records] == [r.record_id for r in month[:10]]
    with pytest.raises(InvalidInput, match="at most 31 days"):
        list(get_services().audit.query(since=START - timedelta(days=40), until=START))
