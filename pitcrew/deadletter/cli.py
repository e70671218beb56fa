"""`pitcrew dlq ...`: view, replay, edit and archive failed messages through the app's API.

Every command goes through the HTTP API: the app acts with its own identity and audits the
operator who asked. `demo-poison` is the one exception, and only for local development: it
writes straight into an Azurite `<queue>-poison` queue (see docs/deadletter.md).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

app = typer.Typer(help="Dead letters: groups, messages, replay, edit, archive.",
                  no_args_is_help=True)
out = Console()
err = Console(stderr=True)
_GROUP = re.compile(r"^[0-9a-f]{12}$")
_TERMINAL = ("succeeded", "cancelled", "failed", "paused")


def _client() -> Any:
    from pitcrew.cli import api_client

    return api_client()


@app.command("groups")
def groups(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Failure groups: source entity and normalised cause, with counts (role Reader)."""
    body = _client().get("/api/dlq/groups")
    if as_json:
        out.print_json(json.dumps(body["groups"]))
        return
    table = Table(Column("group", no_wrap=True, min_width=12), "entity", "cause", "count",
                  Column("first seen", no_wrap=True), Column("last seen", no_wrap=True))
    for g in body["groups"]:
        table.add_row(g["id"], g["entity"], g["cause"], str(g["count"]), g["firstSeen"][:19],
                      g["lastSeen"][:19])
    out.print(table)


@app.command("show")
def show(
    ident: Annotated[str, typer.Argument(help="A group id (12 hex) or a failed-message id.")],
    body: Annotated[bool, typer.Option("--body", help="Include the body (audited).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A group and its messages, or one message (with --body: its body, and an audit record)."""
    client = _client()
    if _GROUP.match(ident):
        view = client.get(f"/api/dlq/groups/{ident}")
        if as_json:
            out.print_json(json.dumps(view))
            return
        out.print(f"[bold]{view['entity']}[/bold]  group {view['id']}  ({view['count']} in all)")
        out.print(f"cause: {view['cause']}", markup=False)
        out.print("statuses: " + ", ".join(f"{k} {v}" for k, v in view["statuses"].items()))
        table = Table(Column("message", no_wrap=True), "status", "message id", "delivery",
                      "enqueued", "size")
        for m in view["messages"]:
            table.add_row(m["id"], m["status"], str(m["properties"].get("message_id", "")),
                          str(m["deliveryCount"] or ""), (m["enqueuedTime"] or "")[:19],
                          str(m["bodySize"]))
        out.print(table)
        return
    params = {"body": "true"} if body else None
    out.print_json(json.dumps(client.get(f"/api/dlq/messages/{ident}", params=params)))


@app.command("replay")
def replay(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Replay a whole group.")]
    = None,
    message: Annotated[list[str] | None, typer.Option("--message", "-m",
                                                      help="Replay these messages.")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", help="Redirect: queue:<name> or servicebus:<namespace>/<entity>.")] = None,
    rate: Annotated[float | None, typer.Option(help="Messages per second.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Messages per batch.")] = None,
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
    job = _client().post("/api/dlq/replays", json={k: v for k, v in request.items()
                                                   if v not in (None, False)})
    out.print(f"replay job [bold]{job['id']}[/bold] queued: {job['selection']} -> "
              f"{job['target']} at {job['rate']:g}/s" + (" (dry run)" if dry_run else ""))
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
    view = client.get(f"/api/dlq/replays/{job_id}")
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=out) as progress:
            task = progress.add_task("replaying", total=view.get("total"))
            while True:
                counts = view["counts"]
                done = counts["sent"] + counts["skipped"] + counts["planned"]
                progress.update(task, completed=done, total=view.get("total"),
                                description=f"{view['status']}")
                if view["status"] in _TERMINAL:
                    break
                time.sleep(interval)
                view = client.get(f"/api/dlq/replays/{job_id}")
    except KeyboardInterrupt:
        err.print(f"stopped following; the job goes on (pitcrew dlq job {job_id}, "
                  f"pitcrew dlq pause {job_id})")
        raise typer.Exit(130) from None
    counts = view["counts"]
    colour = "green" if view["status"] == "succeeded" else "yellow"
    out.print(f"[{colour}]{view['status']}[/{colour}]: sent {counts['sent']}, skipped "
              f"{counts['skipped']}, planned {counts['planned']}, possible duplicates "
              f"{counts['possibleDuplicates']}" + (f"; error: {view['error']}"
                                                  if view.get("error") else ""))
    if view["status"] == "failed":
        raise typer.Exit(1)
    return view


@app.command("jobs")
def jobs() -> None:
    """Recent replay jobs."""
    table = Table("job", "status", "selection", "target", "rate", "sent", "total", "by")
    for j in _client().get("/api/dlq/replays")["jobs"]:
        table.add_row(j["id"], j["status"], json.dumps(j["selection"]), j["target"],
                      f"{j['rate']:g}", str(j["counts"]["sent"]), str(j["total"]), j["actor"])
    out.print(table)


@app.command("job")
def job(job_id: str, watch: Annotated[bool, typer.Option("--watch")] = False) -> None:
    """One replay job's progress."""
    if watch:
        follow(job_id)
        return
    out.print_json(json.dumps(_client().get(f"/api/dlq/replays/{job_id}")))


def _control(job_id: str, action: str) -> None:
    view = _client().post(f"/api/dlq/replays/{job_id}/{action}")
    out.print(f"job {job_id}: {view['status']}" +
              (f" ({view['requested']} requested)" if view.get("requested") else ""))


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
        current = client.get(f"/api/dlq/messages/{message_id}")["applicationProperties"]
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
    edited = _client().post(f"/api/dlq/messages/{message_id}/edit", json=request)
    out.print(f"edited: new message [bold]{edited['id']}[/bold] (original {message_id} kept)")


@app.command("archive")
def archive(
    group: Annotated[str | None, typer.Option("--group", "-g")] = None,
    message: Annotated[list[str] | None, typer.Option("--message", "-m")] = None,
) -> None:
    """Archive failed messages: kept until retention, then purged; never replayed."""
    result = _client().post("/api/dlq/archive", json={"group": group, "messages": message or []})
    out.print(f"archived {result['archived']}, skipped {result['skipped']}")


@app.command("scan")
def scan(source: Annotated[list[str] | None, typer.Option("--source")] = None) -> None:
    """Ingest now instead of waiting for the scan timer (role Operator)."""
    body = _client().post("/api/dlq/scan", json={"sources": source} if source else {})
    for report in body["sources"]:
        out.print(f"{report['source']}: received {report['received']}, new {report['stored']}, "
                  f"groups {', '.join(report['groups']) or '-'}")


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

    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient

    from pitcrew.runtime import DEVELOPMENT_STORAGE, azurite_connection_string

    conn = os.environ.get("AzureWebJobsStorage", "").strip()  # noqa: SIM112 - its real name
    if not conn or conn == DEVELOPMENT_STORAGE:
        conn = azurite_connection_string()
    if "devstoreaccount1" not in conn:
        err.print("[red]✗ demo-poison only writes to Azurite (a development account)[/red]")
        raise typer.Exit(2)
    client = QueueClient.from_connection_string(conn, f"{queue}-poison")
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    for i in range(count):
        order = {"orderId": str(uuid.uuid4()), "sku": f"SKU-{i % 7}", "quantity": i + 1,
                 "poison": "price is negative"}
        client.send_message(base64.b64encode(json.dumps(order).encode()).decode())
    out.print(f"put {count} message(s) into {queue}-poison (as the queue trigger would after "
              "maxDequeueCount failures)")
    try:
        body = _client().post("/api/dlq/scan", json={})
        for report in body["sources"]:
            out.print(f"ingested {report['source']}: {report['stored']} new, groups "
                      f"{', '.join(report['groups']) or '-'}")
    except Exception as exc:  # no host, or no Operator principal: the scan timer takes them
        err.print(f"not scanned now ({exc}); the scan timer ingests them within a minute")
