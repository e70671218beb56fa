"""`pitcrew rotate VAULT/SECRET [--dry-run] [--force --reason TEXT] [--both]` and `pitcrew
rotations`: through the app's API, so the app rotates with its own identity and audits who asked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from pitcrew.cli import client as cli_client
from pitcrew.cli.output import cell, err, more, out, printed_json


def _client() -> Any:
    return cli_client.api_client()


def rotate(
    target: Annotated[str, typer.Argument(help="VAULT/SECRET, e.g. sample-kv/cosmos-primary-key")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Emergency: rotate inside the grace period "
                                           "(needs --reason; audited).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required with --force/--both; audited).")
    ] = None,
    both: Annotated[
        bool, typer.Option("--both", help="Dual-key strategies: also regenerate the key in use, "
                                          "a grace period after promotion (after a leak).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rotate a secret now through the rotation engine (role Rotator)."""
    vault, _, secret = target.strip().partition("/")
    if not vault or not secret or "/" in secret:
        err.print("[red]✗ give the secret as VAULT/SECRET[/red]")
        raise typer.Exit(2)
    if (force or both) and not (reason or "").strip():
        err.print("[red]✗ --force and --both need --reason TEXT (it is audited)[/red]")
        raise typer.Exit(2)
    request: dict[str, Any] = {"vault": vault, "secret": secret, "dry_run": dry_run}
    if force:
        request["force"] = True
    if both:
        request["both"] = True
    if reason:
        request["reason"] = reason
    body = _client().post("/api/rotations", json=request)
    if printed_json(body, as_json):
        # A script reading --json learns of a failed run from the exit code as well.
        if (body.get("run") or {}).get("status") == "failed" and not body.get("inProgress"):
            raise typer.Exit(1)
        return
    if body.get("dryRun"):
        plan = body["plan"]
        out.print(Text.assemble(cell(f"Plan for {vault}/{secret}", "bold"),
                                cell(f" (version {plan.get('version')}, strategy "
                                     f"{plan.get('strategy')}) — nothing was changed:")),
                  highlight=False)
        for i, step in enumerate(plan.get("steps", []), 1):
            out.print(f"  {i}. {step}", highlight=False, markup=False)
        return
    run = body["run"]
    if body.get("inProgress"):  # another request advances it: not a failure
        out.print(Text.assemble(cell("in progress", "yellow"),
                                cell(f" {run['id']} at step {run['step']}: "),
                                cell(body.get("message") or "another request is advancing it")),
                  highlight=False)
        return
    colour = {"succeeded": "green", "waiting": "yellow", "skipped": "yellow"}.get(
        run["status"], "red")
    out.print(Text.assemble(cell(run["status"], colour),
                            cell(f" {run['id']} at step {run['step']}: "), cell(describe(run))),
              highlight=False)
    if run.get("newVersion"):
        out.print(f"  new version {run['newVersion']}"
                  + (f" (holds the {run['regenerated']} key)" if run.get("regenerated") else ""),
                  highlight=False, markup=False)
    if run["status"] == "failed":
        raise typer.Exit(1)


def describe(run: Mapping[str, Any]) -> str:
    """One line saying where a run stands: until when and why it waits, else its outcome."""
    if run.get("status") == "waiting":
        until = run.get("notBefore") or "the grace period ends"
        why = run.get("waitReason") or "grace period"
        return f"waiting until {until}: {why}"
    text = str(run.get("outcome") or "")
    if not text and run.get("lastError"):
        text = f"attempt {run.get('attempts', 0)} failed: {run['lastError']}"
    return text or "in progress"


def runs_table(runs: Iterable[Mapping[str, Any]]) -> Table:
    """The rotations as a table that fits 80 columns: long names fold, outcomes wrap."""
    table = Table(show_lines=False, pad_edge=False, expand=False)
    table.add_column("secret", overflow="fold", ratio=3, min_width=12)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("updated", no_wrap=True, min_width=11)
    table.add_column("outcome", overflow="fold", ratio=4, min_width=16)
    for r in runs:
        version = str(r.get("version") or "")[:8]
        status = f"{r.get('status')}\n{r.get('step')}"
        updated = str(r.get("updatedAt") or "")
        updated = f"{updated[5:10]}\n{updated[11:16]}" if len(updated) >= 16 else updated
        outcome = describe(r)
        if len(outcome) > 240:
            outcome = outcome[:239] + "…"
        table.add_row(cell(f"{r.get('vault')}/{r.get('secret')}\n@{version}"), cell(status),
                      cell(updated), cell(outcome))
    return table


def rotations(
    status: Annotated[str | None, typer.Option(help="running, waiting, succeeded, failed, "
                                                    "skipped")] = None,
    secret: Annotated[str | None, typer.Option(help="Only VAULT/SECRET (or SECRET).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Runs per page.")] = 50,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page, not just the first.")
                         ] = False,
    continuation: Annotated[str | None, typer.Option(help="Token of the page to show (printed "
                                                          "under the previous page).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List rotation runs with their step and outcome (role Reader)."""
    params = {k: v for k, v in {"status": status, "secret": secret,
                                "limit": str(limit)}.items() if v}
    runs, token = cli_client.collect(_client(), "/api/rotations", params, "rotations",
                                     continuation=continuation, every=all_pages)
    if printed_json({"rotations": runs, "continuation": token}, as_json):
        return
    out.print(runs_table(runs))
    more(token)
