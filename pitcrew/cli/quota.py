"""`pitcrew quota ...`: quotas sorted by days to exhaustion, scans, increase requests.

Every command goes through the HTTP API (/api/quota): the app reads and requests with its own
identity and audits the operator who asked.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from pitcrew.cli import client as cli_client
from pitcrew.cli.output import cell, more
from pitcrew.cli.paging import AllPages, Continuation, Limit, fetch

app = typer.Typer(help="Quotas and capacity: usage, forecasts, increase requests.",
                  invoke_without_command=True)
out = Console()
err = Console(stderr=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _days(row: dict[str, Any]) -> float:
    days = row.get("daysToExhaustion")
    return float(days) if days is not None else float("inf")


def quota_table(rows: list[dict[str, Any]]) -> Table:
    """Quotas soonest exhausted first; those not growing last, fullest first."""
    table = Table("quota", "location", Column("usage", justify="right"),
                  Column("limit", justify="right"), Column("%", justify="right"),
                  Column("days", justify="right"), Column("trend/day", justify="right"),
                  "level", "request")
    for row in sorted(rows, key=lambda r: (_days(r), -float(r.get("percent") or 0))):
        days = row.get("daysToExhaustion")
        request = row.get("openRequest") or {}
        table.add_row(cell(row["quota"]), cell(row.get("location") or "-"),
                      f"{row['usage']:g}", f"{row['limit']:g}", f"{row['percent']:g}",
                      "never" if days is None else f"{days:.1f}",
                      "-" if row.get("trendPerDay") is None else f"{row['trendPerDay']:+.2f}",
                      cell(row.get("level")),
                      cell(f"{request.get('newLimit')} {request.get('status')}" if request
                           else ""))
    return table


@app.callback()
def quotas(
    ctx: typer.Context,
    subscription: Annotated[str | None, typer.Option(help="A subscription id.")] = None,
    provider: Annotated[str | None, typer.Option(help="Microsoft.Compute, ...")] = None,
    location: Annotated[str | None, typer.Option(help="eastus, ...")] = None,
    name: Annotated[str | None, typer.Option(help="A quota name.")] = None,
    level: Annotated[str | None, typer.Option(help="ok, warning or critical.")] = None,
    limit: Limit = None,
    continuation: Continuation = None,
    every: AllPages = False,
    as_json: AsJson = False,
) -> None:
    """The quotas scanned, a page at a time, sorted by days to exhaustion (within the page;
    with --all, across every quota) (role Reader)."""
    if ctx.invoked_subcommand is not None:
        return
    rows, token = fetch(cli_client.api_client(), "/api/quota",
                        {"subscription": subscription, "provider": provider,
                         "location": location, "name": name, "level": level}, "quotas",
                        limit=limit, continuation=continuation, every=every)
    if as_json:
        out.print_json(json.dumps({"quotas": sorted(rows, key=_days), "continuation": token}))
        return
    out.print(quota_table(rows))
    more(token)


@app.command("scan")
def scan(as_json: AsJson = False) -> None:
    """Scan now (role Operator)."""
    report = cli_client.api_client().post("/api/quota/scan")
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(f"{report['quotas']} quotas in {report['scopes']} scopes, {report['above']} above "
              f"a threshold, {len(report['notifications'])} notifications, "
              f"{len(report['requests'])} requests")
    for scope in report.get("failedScopes") or []:
        err.print(f"failed: {scope}", markup=False)


@app.command("request")
def request(
    quota: Annotated[str, typer.Argument(help="SCOPE/NAME, e.g. subscriptions/<id>/providers/"
                                              "Microsoft.Compute/locations/eastus/"
                                              "standardDSv5Family")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="The new limit.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the request; send nothing.")
                       ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (audited).")] = None,
    as_json: AsJson = False,
) -> None:
    """Ask for a quota increase (role Operator)."""
    body: dict[str, Any] = {"quota": quota, "limit": limit, "dryRun": dry_run}
    if reason:
        body["reason"] = reason
    answer = cli_client.api_client().post("/api/quota/requests", json=body)
    if as_json:
        out.print_json(json.dumps(answer))
        return
    out.print(f"{answer['status']}: {answer['quota']} {answer['currentLimit']:g} -> "
              f"{answer['newLimit']} ({answer['detail']})", markup=False)
    if answer.get("supportRequest"):
        out.print(Text(answer["supportRequest"]))


@app.command("requests")
def requests(
    status: Annotated[str | None, typer.Option(help="Accepted, InProgress, Succeeded, ...")
                      ] = None,
    limit: Limit = None,
    continuation: Continuation = None,
    every: AllPages = False,
    as_json: AsJson = False,
) -> None:
    """Increase requests, newest first, a page at a time (role Reader)."""
    found, token = fetch(cli_client.api_client(), "/api/quota/requests", {"status": status},
                         "requests", limit=limit, continuation=continuation, every=every)
    if as_json:
        out.print_json(json.dumps({"requests": found, "continuation": token}))
        return
    table = Table("created", "quota", "location", Column("limit", justify="right"), "status",
                  "actor")
    for r in found:
        table.add_row(cell(r["created"][:19]), cell(r["quota"].rsplit("/", 1)[-1]),
                      cell(r["location"]), cell(f"{r['currentLimit']:g} -> {r['newLimit']}"),
                      cell(r["status"]), cell(r["actor"]))
    out.print(table)
    more(token)
