"""Paging: limits, tokens that resume exactly, and forged tokens refused."""

from __future__ import annotations

import pytest

from pitcrew.azure.tables.paging import query_page
from pitcrew.errors import InvalidInput
from pitcrew.http.paging import decode_token, encode_token, limit_param


def test_token_round_trip() -> None:
    state = {"PartitionKey": "p", "RowKey": "r"}
    assert decode_token(encode_token(state)) == state
    assert decode_token(None) is None and decode_token(" ") is None


@pytest.mark.parametrize("raw", ["%%%", "e30" * 1000, "bm90IGpzb24", "WzFd", "\u202eevil"])
def test_forged_tokens_are_invalid_input(raw: str) -> None:
    with pytest.raises(InvalidInput) as err:
        decode_token(raw)
    assert err.value.field == "continuation"


@pytest.mark.parametrize("raw", ["0", "-1", "1001", "abc", "1e3", "\u00b2", "\u0663",
                                 "9" * 5000, "0" * 5000 + "7"])
def test_limit_out_of_range(raw: str) -> None:
    with pytest.raises(InvalidInput):
        limit_param({"limit": raw})
    assert limit_param({}) == 100 and limit_param({"limit": "7"}) == 7


@pytest.mark.azurite
def test_query_page_walks_every_row_once(storage_connection_string: str, unique_name: str) -> None:
    from azure.data.tables import TableServiceClient

    table = TableServiceClient.from_connection_string(storage_connection_string).create_table(
        unique_name
    )
    for p in range(3):
        for r in range(25):
            table.create_entity({"PartitionKey": f"p{p}", "RowKey": f"r{r:03d}", "N": p * 100 + r})
    seen: list[int] = []
    token = None
    pages = 0
    while True:
        page = query_page(table, "N ge @low", parameters={"low": 0}, limit=10,
                          continuation=decode_token(token))
        assert len(page.items) <= 10
        seen += [row["N"] for row in page.items]
        pages += 1
        token = page.continuation
        if token is None:
            break
    assert sorted(seen) == sorted(p * 100 + r for p in range(3) for r in range(25))
    assert len(seen) == len(set(seen))
    assert pages >= 8
