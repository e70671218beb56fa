"""`pitcrew audit`: the audit trail through the app's API (role Reader), a page at a time."""

from __future__ import annotations

from typing import Annotated

import typer

from pitcrew.cli import client as cli_client
from pitcrew.cli.output import cell, err, out, printed_json


def audit(
    since: Annotated[str | None, typer.Option(help="ISO 8601 start (default: a day ago).")] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO 8601 end (default: now); at most 31 days after --since.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only records for this target.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only records by this actor (e.g. user:alice@contoso.com).")
    ] = None,
    action: Annotated[str | None, typer.Option(help="Only records of this action.")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, max=1000, help="Records per page (server default 100).")
    ] = None,
    continuation: Annotated[
        str | None, typer.Option(help="Token printed by the previous page: fetch the next one.")
    ] = None,
    follow_all: Annotated[
        bool, typer.Option("--all", help="Follow continuation tokens: every record in the range.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Read the audit trail through the app's API (role Reader), a page at a time."""
    from rich.table import Table

    given = {"since": since, "until": until, "target": target, "actor": actor, "action": action}
    params = {k: v for k, v in given.items() if v}
    if limit is not None:
        params["limit"] = str(limit)
    elif follow_all:
        params["limit"] = "1000"
    records, token = cli_client.collect(cli_client.api_client(), "/api/audit", params,
                                        "records", continuation=continuation, every=follow_all)
    if not printed_json(records, as_json):
        table = Table("time", "actor", "action", "target", "outcome", "correlation id")
        for r in records:
            table.add_row(*(cell(r[k]) for k in ("time", "actor", "action", "target", "outcome",
                                                  "correlationId")))
        out.print(table)
    if token:
        # On stderr, so --json output stays one JSON document.
        err.print(
            f"more records: repeat with --continuation {token} (same filters), or use --all",
            highlight=False, soft_wrap=True, markup=False,
        )
