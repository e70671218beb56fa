"""`pitcrew alerts`, `pitcrew silences [add|expire]` and `pitcrew notifications [retry]`: the
alerting pipeline's state and its silences, through the app's API (silences are audited with
who asked)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pitcrew.cli import client as cli_client
from pitcrew.cli.output import cell, more
from pitcrew.cli.paging import AllPages, Continuation, Limit, fetch

out = Console()
err = Console(stderr=True)

silences_app = typer.Typer(help="Silences: mute alerts that match, for a while (role Operator "
                           "to add or expire).", invoke_without_command=True,
                           no_args_is_help=False)
notifications_app = typer.Typer(help="The outbox: every notification and its deliveries.",
                                invoke_without_command=True, no_args_is_help=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _client() -> Any:
    return cli_client.api_client()


def alerts(
    receiver: Annotated[str | None, typer.Option("--receiver", help="Only this receiver.")] = None,
    match: Annotated[str | None, typer.Option(
        "--match", help="Only alerts matching NAME=VALUE (or !=, =~, !~).")] = None,
    limit: Limit = None,
    continuation: Continuation = None,
    every: AllPages = False,
    as_json: JsonOption = False,
) -> None:
    """The active alert groups and their alerts, a page of groups at a time; silenced and
    inhibited ones are marked."""
    groups, token = fetch(_client(), "/api/alerts", {"receiver": receiver, "filter": match},
                          "groups", limit=limit, continuation=continuation, every=every)
    if as_json:
        out.print_json(json.dumps({"groups": groups, "continuation": token}))
        return
    if not groups and not token:
        out.print("No active alerts.")
        return
    for group in groups:
        out.print(Text.assemble(cell(group["groupKey"], "bold"), " → ", cell(group["receiver"]),
                                f" (next flush {group.get('nextFlushAt') or '-'})"),
                  highlight=False)
        for alert in group["alerts"]:
            mark = Text()
            if alert["silencedBy"]:
                mark = cell(f" silenced by {', '.join(alert['silencedBy'])}", "yellow")
            elif alert["inhibitedBy"]:
                mark = cell(" inhibited", "yellow")
            colour = "red" if alert["status"] == "firing" else "green"
            out.print(Text.assemble("  ", cell(alert["status"], colour), " ",
                                    cell(alert["title"]), mark), highlight=False)
    more(token)


@silences_app.callback()
def silences(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(
        "--state", help="pending, active or expired.")] = None,
    limit: Limit = None,
    continuation: Continuation = None,
    every: AllPages = False,
    as_json: JsonOption = False,
) -> None:
    """List silences, a page at a time (without a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    found, token = fetch(_client(), "/api/silences", {"state": state}, "silences",
                         limit=limit, continuation=continuation, every=every)
    if as_json:
        out.print_json(json.dumps({"silences": found, "continuation": token}))
        return
    table = Table("id", "state", "matchers", "ends", "created by", "comment")
    for s in found:
        table.add_row(cell(s["id"]), cell(s["state"]), cell(", ".join(s["matchers"])),
                      cell(s["endsAt"]), cell(s["createdBy"]), cell(s["comment"]))
    out.print(table)
    # With --state, the route filters each page after reading it: a page may show fewer
    # silences than --limit (even none) and still not be the last.
    more(token)


@silences_app.command("add")
def add_silence(
    match: Annotated[list[str], typer.Option(
        "--match", help="NAME=VALUE (or !=, =~, !~); repeat for more (all must match).")],
    duration: Annotated[str, typer.Option("--for", help="How long: 30m, 2h, 1d.")],
    comment: Annotated[str, typer.Option("--comment", help="Why (audited).")],
    as_json: JsonOption = False,
) -> None:
    """Silence the alerts that match, starting now."""
    body = _client().post("/api/silences", json={
        "matchers": match, "for": duration, "comment": comment})
    if as_json:
        out.print_json(json.dumps(body))
        return
    out.print(Text.assemble(cell(f"✓ silence {body['id']}", "green"),
                            cell(f" until {body['endsAt']}: {', '.join(body['matchers'])}")),
              highlight=False)


@silences_app.command("expire")
def expire_silence(
    silence_id: Annotated[str, typer.Argument(help="The silence id.")],
    as_json: JsonOption = False,
) -> None:
    """End a silence now (it stays listed, as expired)."""
    body = _client().request("DELETE", f"/api/silences/{cli_client.segment(silence_id)}")
    if as_json:
        out.print_json(json.dumps(body))
        return
    out.print(cell(f"✓ silence {body['id']} expired", "green"), highlight=False)


@notifications_app.callback()
def notifications(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(
        "--status", help="pending, failed or delivered.")] = None,
    receiver: Annotated[str | None, typer.Option("--receiver", help="Only this receiver.")
                        ] = None,
    limit: Limit = None,
    continuation: Continuation = None,
    every: AllPages = False,
    as_json: JsonOption = False,
) -> None:
    """List notifications in the outbox, a page at a time (without a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    found, token = fetch(_client(), "/api/notifications",
                         {"status": status, "receiver": receiver}, "notifications",
                         limit=limit, continuation=continuation, every=every)
    if as_json:
        out.print_json(json.dumps({"notifications": found, "continuation": token}))
        return
    table = Table("id", "receiver", "status", "attempts", "title", "last error")
    for n in found:
        table.add_row(cell(n["id"]), cell(n["receiver"]), cell(n["status"]),
                      cell(n["attempts"]), cell(n["title"]), cell(n.get("lastError")))
    out.print(table)
    more(token)


@notifications_app.command("retry")
def retry(
    notification_id: Annotated[str, typer.Argument(help="The id `pitcrew notifications` shows.")],
    as_json: JsonOption = False,
) -> None:
    """Attempt a pending or failed delivery now (role Operator); exit 1 unless it is
    delivered (now or before)."""
    body = _client().post(f"/api/notifications/{cli_client.segment(notification_id)}/retry")
    # The route answers 200 whatever became of the delivery (the outbox row was read and
    # tried); a script must still see that the notification did not arrive.
    delivered = body["result"] in ("delivered", "already")
    if as_json:
        out.print_json(json.dumps(body))
    else:
        out.print(Text.assemble(cell(body["result"], "green" if delivered else "yellow"), " ",
                                cell(body["title"])), highlight=False)
    if not delivered:
        raise typer.Exit(1)
