"""Table queries read a page at a time (pitcrew.http.paging's tokens wrap their position)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pitcrew.errors import InvalidInput
from pitcrew.http.paging import CONTINUATION_PARAM, MAX_LIMIT, NOT_OURS, Page, encode_token

if TYPE_CHECKING:
    from azure.data.tables import TableClient

T = TypeVar("T")


def query_page(
    table: TableClient,
    query_filter: str,
    *,
    limit: int,
    continuation: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    select: list[str] | None = None,
) -> Page[dict[str, Any]]:
    """At most `limit` entities matching `query_filter`, and a token to continue.

    Each request asks the service for no more than the rows still wanted, so a page never
    overshoots and the service's own continuation resumes exactly after the last row returned.
    A resume position the service refuses (a token edited by hand) is InvalidInput naming
    `continuation`.
    """
    from azure.core.exceptions import HttpResponseError  # SDK on first use (cold start)

    try:
        return _query_page(table, query_filter, limit=limit, continuation=continuation,
                           parameters=parameters, select=select)
    except HttpResponseError as exc:
        if continuation and exc.status_code == 400:
            raise InvalidInput(CONTINUATION_PARAM, NOT_OURS) from None
        raise


def _query_page(
    table: TableClient,
    query_filter: str,
    *,
    limit: int,
    continuation: Mapping[str, Any] | None,
    parameters: Mapping[str, Any] | None,
    select: list[str] | None,
) -> Page[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: dict[str, Any] | None = dict(continuation) if continuation else None
    while len(items) < limit:
        pages: Iterator[Any] = table.query_entities(
            query_filter,
            parameters=dict(parameters or {}),
            select=select,
            results_per_page=min(limit - len(items), MAX_LIMIT),
        ).by_page(continuation_token=token)  # type: ignore[arg-type]  # Tables: a dict
        page_iter = pages
        try:
            page = next(page_iter)
        except StopIteration:
            token = None
            break
        items.extend(dict(entity) for entity in page)
        token = page_iter.continuation_token  # type: ignore[attr-defined]
        if not token:
            token = None
            break
    return Page(items, encode_token(token) if token else None)


def where(query_filter: str, parameters: dict[str, Any],
          *conditions: tuple[str, str, str, Any]) -> str:
    """`query_filter` and each `(column, operator, parameter, value)` whose value is not None,
    the values added to `parameters`."""
    for column, operator, name, value in conditions:
        if value is not None:
            query_filter += f" and {column} {operator} @{name}"
            parameters[name] = value
    return query_filter


def keyed_page(
    table: TableClient,
    query_filter: str,
    parameters: dict[str, Any],
    *,
    limit: int,
    after: str | None,
    convert: Callable[[Any], T],
    key: Callable[[T], str],
) -> Page[T]:
    """One page in RowKey order, resumed after the RowKey `after`; the continuation token is
    `{"after": key(last item)}`, so a page resumes exactly where the last one stopped."""
    if after is not None:
        query_filter += " and RowKey gt @after"
        parameters["after"] = after
    page = query_page(table, query_filter, limit=limit, parameters=parameters)
    items = [convert(row) for row in page.items]
    more = page.continuation is not None and bool(items)
    return Page(items, encode_token({"after": key(items[-1])}) if more else None)
