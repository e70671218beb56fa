"""The paging every list command offers: `--limit`, `--continuation` and `--all`, passed to the
list routes as their own `?limit=&continuation=` (see pitcrew.http.paging), and the page (or
pages) they answer. After a page that is not the last, `output.more` says how to get the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from pitcrew.cli import client as cli_client

DEFAULT_LIMIT = 100  # the routes' default page (pitcrew.http.paging.DEFAULT_LIMIT)
MAX_LIMIT = 1000  # the most a route answers in a page, and the page size --all asks for

Limit = Annotated[int | None, typer.Option(
    "--limit", min=1, max=MAX_LIMIT,
    help=f"Items per page (default {DEFAULT_LIMIT}; {MAX_LIMIT} with --all).")]
Continuation = Annotated[str | None, typer.Option(
    "--continuation", help="Go on from the token the previous page printed (same filters).")]
AllPages = Annotated[bool, typer.Option("--all", help="Follow continuations to the last page.")]


def fetch(client: Any, path: str, filters: Mapping[str, str | None], key: str, *,
          limit: int | None, continuation: str | None, every: bool,
          ) -> tuple[list[Any], str | None]:
    """The items under `key` of the list route `path` with the given filters (empty ones left
    out): one page from `continuation` (or the first), or with `every` all pages from there;
    and the token of the page after them (None when there is none)."""
    params = {k: v for k, v in filters.items() if v}
    params["limit"] = str(limit or (MAX_LIMIT if every else DEFAULT_LIMIT))
    return cli_client.collect(client, path, params, key, continuation=continuation, every=every)
