"""`pitcrew dlq ...`: view, replay, edit and archive failed messages through the app's API.

Every command goes through the HTTP API: the app acts with its own identity and audits the
operator who asked. `demo-poison` is the one exception, and only for local development: it
writes straight into an Azurite `<queue>-poison` queue (see docs/deadletter.md).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from pitcrew.cli import client as cli_client
from pitcrew.cli.client import segment
from pitcrew.cli.output import cell

app = typer.Typer(help="Dead letters: groups, messages, replay, edit, archive.",
                  no_args_is_help=True)
out = Console()
err = Console(stderr=True)
_GROUP = re.compile(r"^[0-9a-f]{12}$")
_TERMINAL = ("succeeded", "cancelled", "failed", "paused")


def _client() -> Any:
    return cli_client.api_client()


Limit = Annotated[int, typer.Option("--limit", min=1, max=1000, help="Items per page.")]
Continuation = Annotated[str | None, typer.Option(
    "--continuation", help="Go on from the token the previous page printed.")]
AllPages = Annotated[bool, typer.Option("--all", help="Follow continuations to the end.")]
Since = Annotated[str | None, typer.Option(help="ISO 8601 start (inclusive).")]
Until = Annotated[str | None, typer.Option(help="ISO 8601 end (exclusive).")]


def pages(path: str, params: dict[str, str], key: str, *, every: bool,
          continuation: str | None = None) -> Iterator[dict[str, Any]]:
    """Each page of a list route (`{key: [...], "continuation": ...}`): one, or all."""
    return cli_client.pages(_client(), path, params, key, continuation=continuation,
                            every=every)


def _more(body: dict[str, Any], every: bool) -> None:
    if not every and body.get("continuation"):
        err.print(f"more: --continuation {body['continuation']}  (or --all)", markup=False)


def _params(**values: str | int | None) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v not in (None, "")}


@app.command("groups")
def groups(
    limit: Limit = 100,
    continuation: Continuation = None,
    every: AllPages = False,
    since: Since = None,
    until: Until = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="Only groups of this source (its name in the policy).")] = None,
    entity: Annotated[str | None, typer.Option(
        "--entity", help="Only groups of this entity, as listed (queue:orders, ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Failure groups: source entity and normalised cause, with counts (role Reader)."""
    params = _params(limit=limit, since=since, until=until, source=source, entity=entity)
    table = Table(Column("group", no_wrap=True, min_width=12), "entity", "cause", "count",
                  Column("first seen", no_wrap=True), Column("last seen", no_wrap=True))
    found: list[Any] = []
    body: dict[str, Any] = {}
    for body in pages("/api/dlq/groups", params, "groups", every=every,
                      continuation=continuation):
        found += body["groups"]
        for g in body["groups"]:
            table.add_row(cell(g["id"]), cell(g["entity"]), cell(g["cause"]), cell(g["count"]),
                          cell(g["firstSeen"][:19]), cell(g["lastSeen"][:19]))
    if as_json:
        out.print_json(json.dumps({"groups": found,
                                   "continuation": body.get("continuation")}))
        return
    out.print(table)
    _more(body, every)


def _filters(status: str | None, since: str | None, until: str | None, text: str | None,
             properties: list[str] | None) -> dict[str, str]:
    params = _params(status=status, since=since, until=until, text=text)
    for item in properties or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--property")
        params[f"prop.{key}"] = value
    return params


@app.command("show")
def show(
    ident: Annotated[str, typer.Argument(help="A group id (12 hex) or a failed-message id.")],
    body: Annotated[bool, typer.Option("--body", help="Include the body (audited).")] = False,
    limit: Limit = 100,
    status: Annotated[str | None, typer.Option(
        help="failed, replaying, replayed, archived or superseded.")] = None,
    since: Since = None,
    until: Until = None,
    text: Annotated[str | None, typer.Option(
        help="Text in the body, reason or description (case-insensitive).")] = None,
    prop: Annotated[list[str] | None, typer.Option(
        "--property", help="Application property key=value (repeatable).")] = None,
    continuation: Continuation = None,
    every: AllPages = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A group and its messages (filtered, paged), or one message (with --body: its decoded
    body, and an audit record)."""
    if not _GROUP.match(ident):
        _show_message(ident, body, as_json)
        return
    params = _params(limit=limit) | _filters(status, since, until, text, prop)
    table = Table(Column("message", no_wrap=True), "status", "message id", "delivery",
                  Column("ingested", no_wrap=True), "size", Column("preview", overflow="fold"))
    view: dict[str, Any] = {}
    found: list[Any] = []
    for index, view in enumerate(pages(f"/api/dlq/groups/{segment(ident)}", params,
                                       "messages", every=every, continuation=continuation)):
        items = view["messages"]
        if index == 0 and not as_json:
            out.print(Text.assemble(cell(view["entity"], "bold"),
                                    cell(f"  group {view['id']}  ({view['count']} in all)")),
                      highlight=False)
            out.print(f"cause: {view['cause']}", markup=False)
            if view.get("statuses"):
                out.print("statuses: " + ", ".join(f"{k} {v}"
                                                   for k, v in view["statuses"].items()),
                          markup=False)
        found += items
        for m in items:
            table.add_row(cell(m["id"]), cell(m["status"]),
                          cell(m["properties"].get("message_id", "")),
                          cell(m["deliveryCount"] or ""), cell((m["ingestedAt"] or "")[:19]),
                          cell(m["bodySize"]), cell(m.get("preview") or ""))
    if as_json:
        out.print_json(json.dumps(view | {"messages": found}))
        return
    out.print(table)
    _more(view, every)


def _show_message(ident: str, body: bool, as_json: bool) -> None:
    params = {"body": "true"} if body else None
    view = _client().get(f"/api/dlq/messages/{segment(ident)}", params=params)
    if as_json or not body:
        out.print_json(json.dumps(view))
        return
    content = view.pop("body")
    out.print_json(json.dumps(view))
    out.rule(cell(f"body: {content['format']}, {content['decodedSize']} bytes"
                  + (" (decoded from base64)" if content.get("encoding") == "base64" else "")))
    if content["format"] == "json":
        out.print_json(json.dumps(content["json"]))
    elif content["format"] == "text":
        out.print(content["text"], markup=False, highlight=False)
    else:
        out.print(content["hex"], markup=False, highlight=False)


@app.command("replay")
def replay(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Replay a whole group.")]
    = None,
    message: Annotated[list[str] | None, typer.Option("--message", "-m",
                                                      help="Replay these messages.")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", help="A target the policy allows (the 400 lists them): queue:<name> or "
        "servicebus:<namespace>/<entity>.")] = None,
    rate: Annotated[float | None, typer.Option(help="Messages per second (above 0).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Messages per batch.")] = None,
    message_id: Annotated[str | None, typer.Option(
        "--message-id", help="'keep' (broker dedup protects) or 'new' (recorded, linked).")]
    = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, send nothing.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow progress.")] = True,
) -> None:
    """Replay a group or messages (role Operator). The selection is frozen now; the app sends
    at the given rate, and this command shows its progress."""
    request: dict[str, Any] = {"group": group, "messages": message or None, "target": to,
                               "rate": rate, "batchSize": batch_size, "messageId": message_id,
                               "dryRun": dry_run}
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise typer.BadParameter("must be a number of messages per second above 0",
                                 param_hint="--rate")
    # Only what was given is sent (0 is a value, not "absent": the route refuses it).
    job = _client().post("/api/dlq/replays", json={k: v for k, v in request.items()
                                                   if v is not None and v is not False})
    out.print(Text.assemble("replay job ", cell(job["id"], "bold"),
                            cell(f" queued: {job['selection']} -> {job['target']} at "
                                 f"{job['rate']:g}/s" + (" (dry run)" if dry_run else ""))))
    if wait:
        follow(job["id"])


def follow(job_id: str, *, interval: float = 0.5) -> dict[str, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    client = _client()
    path = f"/api/dlq/replays/{segment(job_id)}"
    view = client.get(path)
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=out) as progress:
            task = progress.add_task("replaying", total=view.get("total"))
            while True:
                counts = view["counts"]
                done = (counts["sent"] + counts["skipped"] + counts.get("failed", 0)
                        + counts["planned"])
                stale = (f" (stale: heartbeat {view.get('heartbeatAgeSeconds')} s ago)"
                         if view.get("stale") else "")
                # The description is read as markup by the progress column.
                progress.update(task, completed=done, total=view.get("total"),
                                description=escape(f"{view['status']}{stale}"))
                if view["status"] in _TERMINAL:
                    break
                time.sleep(interval)
                view = client.get(path)
    except KeyboardInterrupt:
        err.print(f"stopped following; the job goes on (pitcrew dlq job {job_id}, "
                  f"pitcrew dlq pause {job_id})", markup=False)
        raise typer.Exit(130) from None
    counts = view["counts"]
    colour = "green" if view["status"] == "succeeded" else "yellow"
    out.print(Text.assemble(
        cell(view["status"], colour),
        cell(f": sent {counts['sent']}, skipped {counts['skipped']}, failed "
             f"{counts.get('failed', 0)}, remaining {view.get('remaining')}, planned "
             f"{counts['planned']}, possible duplicates {counts['possibleDuplicates']}"
             + (f"; error: {view['error']}" if view.get("error") else ""))))
    if view["status"] == "failed":
        raise typer.Exit(1)
    return view


@app.command("jobs")
def jobs(
    limit: Limit = 100,
    continuation: Continuation = None,
    every: AllPages = False,
    since: Annotated[str | None, typer.Option(
        help="ISO 8601 start (default: 30 days before --until).")] = None,
    until: Until = None,
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
) -> None:
    """Replay jobs requested in a time range (default the last 30 days), oldest first."""
    table = Table("job", "status", "selection", "target", "rate", "sent", "total", "by")
    body: dict[str, Any] = {}
    for body in pages("/api/dlq/replays",
                      _params(limit=limit, since=since, until=until, status=status),
                      "jobs", every=every, continuation=continuation):
        for j in body["jobs"]:
            table.add_row(cell(j["id"]), cell(j["status"]), cell(json.dumps(j["selection"])),
                          cell(j["target"]), f"{j['rate']:g}", cell(j["counts"]["sent"]),
                          cell(j["total"]), cell(j["actor"]))
    out.print(table)
    _more(body, every)


@app.command("job")
def job(job_id: str, watch: Annotated[bool, typer.Option("--watch")] = False) -> None:
    """One replay job's progress."""
    if watch:
        follow(job_id)
        return
    out.print_json(json.dumps(_client().get(f"/api/dlq/replays/{segment(job_id)}")))


def _control(job_id: str, action: str) -> None:
    view = _client().post(f"/api/dlq/replays/{segment(job_id)}/{action}")
    out.print(f"job {job_id}: {view['status']}" +
              (f" ({view['requested']} requested)" if view.get("requested") else ""),
              markup=False)


@app.command("pause")
def pause(job_id: str) -> None:
    """Pause a replay job after its current batch."""
    _control(job_id, "pause")


@app.command("resume")
def resume(job_id: str) -> None:
    """Resume a paused replay job."""
    _control(job_id, "resume")


@app.command("cancel")
def cancel(job_id: str) -> None:
    """Cancel a replay job; what it did not send stays failed."""
    _control(job_id, "cancel")


@app.command("edit")
def edit(
    message_id: str,
    body_file: Annotated[Path | None, typer.Option(help="New body from a file.")] = None,
    text: Annotated[str | None, typer.Option(help="New body as text.")] = None,
    set_property: Annotated[list[str] | None, typer.Option(
        "--set", help="Application property key=value (JSON values allowed).")] = None,
) -> None:
    """Edit a failed message (when policy allows): a new message, linked to the kept original."""
    request: dict[str, Any] = {}
    if body_file is not None:
        data = body_file.read_bytes()
        try:
            request["body"] = {"text": data.decode("utf-8")}
        except UnicodeDecodeError:
            import base64

            request["body"] = {"base64": base64.b64encode(data).decode()}
    elif text is not None:
        request["body"] = {"text": text}
    if set_property:
        client = _client()
        current = client.get(f"/api/dlq/messages/{segment(message_id)}"
                             )["applicationProperties"]
        props = {k: v for k, v in current.items() if not isinstance(v, dict)}
        for item in set_property:
            key, sep, value = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--set")
            try:
                props[key] = json.loads(value)
            except ValueError:
                props[key] = value
        request["applicationProperties"] = props
    edited = _client().post(f"/api/dlq/messages/{segment(message_id)}/edit", json=request)
    out.print(Text.assemble("edited: new message ", cell(edited["id"], "bold"),
                            cell(f" (original {message_id} kept)")))


@app.command("archive")
def archive(
    group: Annotated[str | None, typer.Option("--group", "-g")] = None,
    message: Annotated[list[str] | None, typer.Option("--message", "-m")] = None,
) -> None:
    """Archive failed messages: kept until retention, then purged; never replayed."""
    result = _client().post("/api/dlq/archive", json={"group": group, "messages": message or []})
    out.print(f"archived {result['archived']}, skipped {result['skipped']}")


@app.command("scan")
def scan(
    source: Annotated[list[str] | None, typer.Option("--source")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow progress.")] = True,
) -> None:
    """Ingest now instead of waiting for the scan timer (role Operator). The app answers at
    once with a scan job and ingests in the background; this command shows its progress."""
    job = _client().post("/api/dlq/scan", json={"sources": source} if source else {})
    out.print(Text.assemble("scan job ", cell(job["id"], "bold"),
                            cell(f" queued: {', '.join(job['sources']) or '-'}")))
    if wait:
        follow_scan(job["id"])


def follow_scan(job_id: str, *, interval: float = 0.5) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    client = _client()
    path = f"/api/dlq/scans/{segment(job_id)}"
    view = client.get(path)
    try:
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                      MofNCompleteColumn(), console=out) as progress:
            task = progress.add_task("scanning", total=view.get("total"))
            while True:
                progress.update(task, completed=view["received"], total=view.get("total"),
                                description=escape(str(view["status"])))
                if view["status"] in ("succeeded", "failed"):
                    break
                time.sleep(interval)
                view = client.get(path)
    except KeyboardInterrupt:
        err.print(f"stopped following; the scan goes on (pitcrew dlq scan-status {job_id})",
                  markup=False)
        raise typer.Exit(130) from None
    for report in view["reports"]:
        out.print(f"{report['source']}: received {report['received']}, new {report['stored']}, "
                  f"groups {', '.join(report['groups']) or '-'}", highlight=False, markup=False)
    for name, problem in view["errors"].items():
        err.print(cell(f"{name}: {problem}", "red"), highlight=False)
    colour = "green" if view["status"] == "succeeded" else "red"
    out.print(Text.assemble(cell(view["status"], colour),
                            cell(f": received {view['received']}, new {view['stored']}")))
    if view["status"] == "failed":
        raise typer.Exit(1)
    return view


@app.command("scan-status")
def scan_status(job_id: str,
                watch: Annotated[bool, typer.Option("--watch")] = False) -> None:
    """One scan job's progress."""
    if watch:
        follow_scan(job_id)
        return
    out.print_json(json.dumps(_client().get(f"/api/dlq/scans/{segment(job_id)}")))


@app.command("purge")
def purge(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Purge this group.")]
    = None,
    before: Annotated[str | None, typer.Option(
        help="Purge every message ingested before this ISO 8601 time.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
    = False,
) -> None:
    """Delete failed messages now (role Operator, audited): stored bodies and rows, and
    Service Bus copies still in a dead-letter queue. Messages a replay holds are kept."""
    if (group is None) == (before is None):
        raise typer.BadParameter("give exactly one of --group or --before")
    request: dict[str, Any] = {"group": group} if group else {"before": before}
    client = _client()
    plan = client.post("/api/dlq/purge", json=request | {"dryRun": True})
    _print_purge_plan(plan)
    if dry_run or plan["count"] == 0:
        return
    if not yes and not typer.confirm(f"Delete {plan['count']}"
                                     f"{'+' if plan['more'] else ''} message(s) for good?"):
        err.print("nothing purged")
        raise typer.Exit(1)
    purged = broker = 0
    while True:
        done = client.post("/api/dlq/purge", json=request)
        purged += done["purged"]
        broker += done["brokerDeleted"]
        if not done["more"] or done["purged"] == 0:
            break
    out.print(f"purged {purged} message(s)"
              + (f", {broker} still at a Service Bus dead-letter queue" if broker else "")
              + (f"; kept {done['skipped']} held by a replay" if done["skipped"] else ""))


def _print_purge_plan(plan: dict[str, Any]) -> None:
    table = Table(Column("message", no_wrap=True), "status", "entity",
                  Column("ingested", no_wrap=True), Column("preview", overflow="fold"))
    for m in plan["messages"]:
        table.add_row(cell(m["id"]), cell(m["status"]), cell(m["entity"]),
                      cell(m["ingestedAt"][:19]), cell(m.get("preview") or ""))
    if plan["messages"]:
        out.print(table)
    shown = len(plan["messages"])
    out.print(f"would purge {plan['count']}{'+ (more after these)' if plan['more'] else ''} "
              f"message(s) in {len(plan['groups'])} group(s)"
              + (f" (first {shown} listed)" if shown < plan["count"] else "")
              + (f"; {plan['skipped']} held by a replay stay" if plan["skipped"] else ""))


@app.command("demo-poison")
def demo_poison(
    queue: Annotated[str, typer.Option(help="The demo queue; messages go to <queue>-poison.")]
    = "orders",
    count: Annotated[int, typer.Option(min=1, max=10_000)] = 5,
) -> None:
    """Development only: put `count` order messages into Azurite's `<queue>-poison`, exactly as
    the queue trigger leaves a message that failed maxDequeueCount times (the text, unchanged,
    base64 as queued). The deployed app holds no demo consumer; this stands in for one."""
    import base64
    import contextlib
    import os
    import uuid

    # lazy: a development command; the Storage SDK and the runtime load only when it runs
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient

    from pitcrew.deadletter.policy import is_source_queue_name
    from pitcrew.runtime import DEVELOPMENT_STORAGE, azurite_connection_string

    if not is_source_queue_name(queue):
        raise typer.BadParameter("must be a storage queue name (3-56 lower-case letters, "
                                 "digits, single hyphens; '-poison' is added)",
                                 param_hint="--queue")
    conn = os.environ.get("AzureWebJobsStorage", "").strip()  # noqa: SIM112 - its real name
    if not conn or conn == DEVELOPMENT_STORAGE:
        conn = azurite_connection_string()
    if "devstoreaccount1" not in conn:
        err.print("[red]✗ demo-poison only writes to Azurite (a development account)[/red]")
        raise typer.Exit(2)
    # The workload's queue too: a replay puts messages back into it, and pitcrew never
    # creates a queue it replays into (a deployment has it already).
    for name in (queue, f"{queue}-poison"):
        with contextlib.suppress(ResourceExistsError):
            QueueClient.from_connection_string(conn, name).create_queue()
    client = QueueClient.from_connection_string(conn, f"{queue}-poison")
    for i in range(count):
        order = {"orderId": str(uuid.uuid4()), "sku": f"SKU-{i % 7}", "quantity": i + 1,
                 "poison": "price is negative"}
        client.send_message(base64.b64encode(json.dumps(order).encode()).decode())
    out.print(f"put {count} message(s) into {queue}-poison (as the queue trigger would after "
              "maxDequeueCount failures)")
    try:
        job = _client().post("/api/dlq/scan", json={})
        follow_scan(job["id"])
    except typer.Exit:
        raise
    except Exception as exc:  # no host, or no Operator principal: the scan timer takes them
        err.print(f"not scanned now ({exc}); the scan timer ingests them within a minute",
                  markup=False)
