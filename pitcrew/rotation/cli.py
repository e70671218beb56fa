"""`pitcrew rotate VAULT/SECRET [--dry-run]` and `pitcrew rotations`: through the app's API, so
the app rotates with its own identity and audits who asked."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def _client() -> Any:
    from pitcrew.cli import api_client

    return api_client()


def rotate(
    target: Annotated[str, typer.Argument(help="VAULT/SECRET, e.g. sample-kv/cosmos-primary-key")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rotate a secret now through the rotation engine (role Rotator)."""
    vault, _, secret = target.strip().partition("/")
    if not vault or not secret or "/" in secret:
        err.print("[red]✗ give the secret as VAULT/SECRET[/red]")
        raise typer.Exit(2)
    body = _client().post("/api/rotations",
                          json={"vault": vault, "secret": secret, "dry_run": dry_run})
    if as_json:
        out.print_json(json.dumps(body))
        return
    if body.get("dryRun"):
        plan = body["plan"]
        out.print(f"[bold]Plan for {vault}/{secret}[/bold] (version {plan.get('version')}, "
                  f"strategy {plan.get('strategy')}) — nothing was changed:", highlight=False)
        for i, step in enumerate(plan.get("steps", []), 1):
            out.print(f"  {i}. {step}", highlight=False, markup=False)
        return
    run = body["run"]
    colour = {"succeeded": "green", "waiting": "yellow", "skipped": "yellow"}.get(
        run["status"], "red")
    out.print(f"[{colour}]{run['status']}[/{colour}] {run['id']} at step {run['step']}: "
              f"{run.get('outcome') or ''}", highlight=False)
    if run.get("newVersion"):
        out.print(f"  new version {run['newVersion']}"
                  + (f" (holds the {run['regenerated']} key)" if run.get("regenerated") else ""),
                  highlight=False)
    if run["status"] == "failed":
        raise typer.Exit(1)


def rotations(
    status: Annotated[str | None, typer.Option(help="running, waiting, succeeded, failed, "
                                                    "skipped")] = None,
    secret: Annotated[str | None, typer.Option(help="Only VAULT/SECRET (or SECRET).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List rotation runs with their step and outcome (role Reader)."""
    from rich.table import Table

    params = {k: v for k, v in {"status": status, "secret": secret}.items() if v}
    runs = _client().get("/api/rotations", params=params).get("rotations", [])
    if as_json:
        out.print_json(json.dumps(runs))
        return
    table = Table("updated", "secret", "version", "strategy", "step", "status", "outcome")
    for r in runs:
        table.add_row(r["updatedAt"][:19], f"{r['vault']}/{r['secret']}", str(r["version"])[:12],
                      str(r["strategy"]), r["step"], r["status"], str(r.get("outcome") or ""))
    out.print(table)
