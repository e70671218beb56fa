"""What `pitcrew dev` prints: the endpoints, the key, warnings; and terminal logging."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pitcrew.local.catalog import EVENT_GRID, HTTP, QUEUE, SERVICE_BUS, TIMER

if TYPE_CHECKING:
    from pitcrew.local.host import LocalHost


def configure_logging(level: int = logging.INFO) -> None:
    """Host and function logs to the terminal through rich (tracebacks included, as Core Tools)."""
    from rich.logging import RichHandler

    handler = RichHandler(rich_tracebacks=True, show_path=False, markup=False)
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        root.addHandler(handler)
    root.setLevel(level)
    # The SDKs log every HTTP request at INFO; that drowns the function logs.
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def print_banner(host: LocalHost, base_url: str, *, azurite_started: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    status = host.status(base_url)
    by_name = {f["name"]: f for f in status["functions"]}
    table = Table(title="pitcrew local host - functions", title_justify="left", show_lines=False)
    table.add_column("function")
    table.add_column("trigger")
    # Fold, never truncate: a cut-off webhook URL is useless to copy.
    table.add_column("endpoint / schedule", overflow="fold")
    table.add_column("auth")
    for spec in host.functions:
        info = by_name[spec.name]
        if not spec.available:
            table.add_row(
                spec.name,
                spec.trigger_type,
                f"[yellow]not available locally[/]: {spec.unavailable_reason}",
                "",
            )
        elif spec.trigger_type == HTTP:
            methods = ",".join(spec.methods) if spec.methods else "ALL"
            table.add_row(spec.name, "http", f"{methods} {info['url']}", spec.auth_level)
        elif spec.trigger_type == EVENT_GRID:
            table.add_row(spec.name, "eventGrid", f"POST {info['url']}", "key")
        elif spec.trigger_type == TIMER:
            worker = next(t for t in host.timers if t.spec is spec)
            startup = " (runs on startup)" if spec.trigger.get("runOnStartup") else ""
            table.add_row(spec.name, "timer", f"{worker.schedule.expression} UTC{startup}", "")
        elif spec.trigger_type in (QUEUE, SERVICE_BUS):
            queue = next((q for q in host.queues if q.spec is spec), None)
            name = queue.binding.queue_name if queue else spec.trigger.get("queueName")
            table.add_row(spec.name, "queue", f"queue '{name}' (poison: '{name}-poison')", "")
    console.print(table)
    console.print(f"Host status:  GET {base_url}/admin/host/status")
    console.print(
        f"Run a non-HTTP function now:  POST {base_url}/admin/functions/<name> "
        '{"input": "..."}  (with the key)'
    )
    console.print(f"Local inbox:  {base_url}/_pitcrew/inbox")
    if azurite_started:
        console.print("Azurite: started by this host (stopped on exit)")
    console.print(
        f"Function key: [bold]{host.function_key}[/]  (?code=<key> or header x-functions-key)"
    )
    if host.allow_dev_principal:
        console.print(
            "[bold white on red] WARNING [/] [bold red]--allow-dev-principal: client-sent "
            "X-MS-CLIENT-PRINCIPAL headers are trusted. Anyone who can reach this port can "
            "claim any identity and role. Development only.[/]"
        )
    console.print("Press Ctrl+C to stop.")
