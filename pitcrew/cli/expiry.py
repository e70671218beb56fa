"""`pitcrew expiry [--vault V] [--class C] [--kind K]` lists the last sweep's findings;
`pitcrew expiry sweep [--dry-run] [--fix] [--vault V]` sweeps now. Through the app's API, so the
app acts with its own identity and audits who asked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer
from rich.table import Table

from pitcrew.cli import client as cli_client
from pitcrew.cli.output import cell, more, out, printed_json

app = typer.Typer(help="Expiry of secrets, keys and certificates: the sweep and its findings.",
                  invoke_without_command=True, no_args_is_help=False)


def _client() -> Any:
    return cli_client.api_client()


def findings_table(objects: Iterable[Mapping[str, Any]]) -> Table:
    """The findings as a table that fits 80 columns."""
    table = Table(show_lines=False, pad_edge=False, expand=False)
    table.add_column("object", overflow="fold", ratio=3, min_width=14)
    table.add_column("class", no_wrap=True, min_width=9)
    table.add_column("expires", no_wrap=True, min_width=10)
    table.add_column("action / problems", overflow="fold", ratio=4, min_width=16)
    for o in objects:
        expires = str(o.get("expires") or "")[:10]
        note = "; ".join(p for p in (o.get("action") or "", *(o.get("problems") or [])) if p)
        if len(note) > 240:
            note = note[:239] + "…"
        table.add_row(cell(f"{o.get('vault')}/{o.get('kind')}s/\n{o.get('name')}"),
                      cell(o.get("class")), cell(expires), cell(note))
    return table


@app.callback()
def expiry(
    ctx: typer.Context,
    vault: Annotated[str | None, typer.Option(help="Only this vault.")] = None,
    cls: Annotated[str | None, typer.Option("--class", help="expired, expiring, no-expiry, "
                                                            "ok, disabled")] = None,
    kind: Annotated[str | None, typer.Option(help="secret, key or certificate")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Objects per page.")] = 50,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page.")] = False,
    continuation: Annotated[str | None, typer.Option(help="Token of the page to show.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List what the last expiry sweep found (role Reader)."""
    if ctx.invoked_subcommand is not None:
        return
    params = {k: v for k, v in {"vault": vault, "class": cls, "kind": kind,
                                "limit": str(limit)}.items() if v}
    objects, token = cli_client.collect(_client(), "/api/expiry", params, "objects",
                                        continuation=continuation, every=all_pages)
    if printed_json({"objects": objects, "continuation": token}, as_json):
        return
    out.print(findings_table(objects))
    more(token)


@app.command()
def sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and report; change "
                                                            "nothing.")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="Also apply pitcrew.yaml's key rotation "
                                                    "policies and disable stale versions.")
                   ] = False,
    vault: Annotated[str | None, typer.Option(help="Only this vault (one of expiry.vaults).")
                     ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Sweep now (role Rotator): classify, rotate/renew what a rule owns, report the rest.
    Exits 1 when a vault could not be swept (in full)."""
    request: dict[str, Any] = {"dry_run": dry_run, "fix": fix}
    if vault:
        request["vault"] = vault
    body = _client().post("/api/expiry/sweep", json=request)
    if not printed_json(body, as_json):
        _print_sweep(body)
    if any(result.get("errors") for result in body.get("vaults", [])):
        raise typer.Exit(1)


def _print_sweep(body: Mapping[str, Any]) -> None:
    mode = " (plan: nothing was changed)" if body.get("plan") else ""
    out.print(cell(f"Sweep {body.get('sweep')}", "bold") + mode, highlight=False)
    for result in body.get("vaults", []):
        counts = ", ".join(f"{n} {c}" for c, n in sorted(result.get("counts", {}).items()))
        out.print(f"{result['vault']}: {counts or 'nothing listed'}", highlight=False,
                  markup=False)
        for error in result.get("errors", []):
            out.print(f"  cannot sweep: {error}", highlight=False, markup=False)
        if result.get("attention"):
            out.print(findings_table(result["attention"]))
            left = int(result.get("attentionCount") or 0) - len(result["attention"])
            if left > 0:
                out.print(f"  … and {left} more: pitcrew expiry --vault {result['vault']}",
                          highlight=False, markup=False)
