"""`pitcrew backups`, `pitcrew drills`, `pitcrew drill run NAME [--dry-run]` and `pitcrew images
purge [--dry-run]`: recovery readiness through the app's API (the app acts with its own
identity and audits who asked)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from pitcrew.cli import client as cli_client
from pitcrew.cli.output import cell, err, fail, more, out, printed_json
from pitcrew.cli.paging import AllPages, Continuation, Limit, fetch

drill_app = typer.Typer(help="Restore drills: run one now (or its dry run).",
                        no_args_is_help=True)
images_app = typer.Typer(help="Registry images: the purge.", no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _client() -> Any:
    return cli_client.api_client()


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value / 60:.1f} min" if value >= 120 else f"{value:.1f} s"


def backups(
    failing: Annotated[bool, typer.Option("--failing",
                                          help="Only failing resources.")] = False,
    check: Annotated[str | None, typer.Option("--check", help="One check by name.")] = None,
    resource: Annotated[str | None, typer.Option(
        "--resource", help="One resource by its full ARM id.")] = None,
    limit: Limit = None,
    continuation: Continuation = None,
    every: AllPages = False,
    as_json: AsJson = False,
) -> None:
    """The last result of each backup check, per resource (at most 100 a check), a page of
    checks at a time (role Reader)."""
    checks, token = fetch(_client(), "/api/backups",
                          {"failing": "true" if failing else None, "check": check,
                           "resource": resource},
                          "checks", limit=limit, continuation=continuation, every=every)
    if printed_json({"checks": checks, "continuation": token}, as_json):
        return
    table = Table("check", "resource", "ok", "problems", "checked")
    for listed in checks:
        for res in listed.get("resources", []):
            table.add_row(cell(listed["check"]), cell(str(res["resource"]).rsplit("/", 1)[-1]),
                          cell("yes") if res["ok"] else cell("no", "red"),
                          cell("; ".join(res["problems"]) or "-"),
                          cell(listed["checkedAt"][:19]))
    out.print(table)
    for listed in checks:
        if listed.get("resourceCount", 0) > len(listed.get("resources", [])):
            err.print(f"{listed['check']}: {len(listed['resources'])} of "
                      f"{listed['resourceCount']} resources listed; narrow with --failing or "
                      "--resource", markup=False)
    more(token)


def drills(
    status: Annotated[str | None, typer.Option(
        "--status", help="never-run, running, waiting-manual, succeeded or failed.")] = None,
    failing: Annotated[bool, typer.Option(
        "--failing", help="Only drills with a problem (failed, overdue, late).")] = False,
    account: Annotated[str | None, typer.Option(
        "--account", help="One account by its full ARM id.")] = None,
    limit: Limit = None,
    continuation: Continuation = None,
    every: AllPages = False,
    as_json: AsJson = False,
) -> None:
    """The restore drills with their last result and measured RTO, a page at a time (role
    Reader)."""
    views, token = fetch(_client(), "/api/drills",
                         {"status": status, "failing": "true" if failing else None,
                          "account": account},
                         "drills", limit=limit, continuation=continuation, every=every)
    if printed_json({"drills": views, "continuation": token}, as_json):
        return
    table = Table("drill", "status", "last result", "RTO", "restore", "next due", "problems")
    for v in views:
        table.add_row(cell(v["name"]), cell(v["status"]), cell(v.get("lastResult") or "-"),
                      _seconds(v.get("rtoSeconds")), _seconds(v.get("restoreSeconds")),
                      cell((v.get("nextDue") or "-")[:10]),
                      cell("; ".join(v.get("problems") or []) or "-"))
    out.print(table)
    more(token)


@drill_app.command("run")
def drill_run(
    name: Annotated[str, typer.Argument(help="The drill's name in the policy.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the restorable window "
                                          "and print what would be created; change nothing.")]
    = False,
    as_json: AsJson = False,
) -> None:
    """Run a restore drill now (role Operator). Try --dry-run first. Exits 1 when the run
    failed, or the dry run found problems (the drill would not pass as planned)."""
    body = _client().post(f"/api/drills/{cli_client.segment(name)}/run",
                          json={"dryRun": dry_run})
    if not printed_json(body, as_json):
        _print_drill_run(name, body, dry_run)
    if body.get("status") == "failed" or (dry_run and body.get("problems")):
        raise typer.Exit(1)


def _print_drill_run(name: str, body: dict[str, Any], dry_run: bool) -> None:
    if dry_run:
        out.print(f"dry run of drill {name}: mode {body.get('mode')}", markup=False)
        for key in ("restoreAt", "scratchAccount", "oldestRestorable"):
            if body.get(key):
                out.print(f"  {key}: {body[key]}", markup=False)
        if body.get("supportCase"):
            out.print("support case text:\n" + body["supportCase"], markup=False)
    else:
        if body.get("message"):  # e.g. already running: another request advances it
            out.print(f"drill {name}: {body['message']}", highlight=False, markup=False)
        out.print(f"drill {name}: run {body.get('run')} {body.get('status')} "
                  f"(step {body.get('step')}), RTO {_seconds(body.get('rtoSeconds'))}",
                  markup=False)
    for problem in body.get("problems") or []:
        fail(problem)


@images_app.command("purge")
def images_purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what the filter would "
                                          "remove; delete nothing.")] = False,
    registry: Annotated[str | None, typer.Option(help="One registry's login server.")] = None,
    as_json: AsJson = False,
) -> None:
    """Purge old registry images by the policy's filter (role Operator). Exits 1 when a
    registry had problems (it could not be reached, read or purged in full)."""
    request: dict[str, Any] = {"dryRun": dry_run}
    if registry:
        request["registry"] = registry
    body = _client().post("/api/images/purge", json=request)
    if not printed_json(body, as_json):
        _print_purge(body)
    if any(reg.get("problems") for reg in body.get("registries", [])):
        raise typer.Exit(1)


def _print_purge(body: dict[str, Any]) -> None:
    for reg in body.get("registries", []):
        verb = "would remove" if reg["dryRun"] else "removed"
        out.print(f"{reg['registry']}: {verb} {reg['count']} images, {reg['bytes']} bytes; "
                  f"kept {reg['kept']}", markup=False)
        for image in reg["images"]:
            out.print(f"  {image['repository']}@{image['digest'][:19]} "
                      f"{','.join(image['tags']) or '<untagged>'} {image['bytes']} B",
                      markup=False)
        for problem in reg["problems"]:
            fail(problem)
