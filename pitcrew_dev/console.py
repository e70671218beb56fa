"""What `pitcrew dev` prints: the endpoints, the key, warnings; and terminal logging."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from pitcrew_dev.catalog import EVENT_GRID, HTTP, QUEUE, TIMER, FunctionSpec

if TYPE_CHECKING:
    from pitcrew_dev.host import LocalHost


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


def _function_line(host: LocalHost, spec: FunctionSpec, info: dict[str, Any]) -> str:
    """One line per function; URLs whole, so they can be copied from any terminal width."""
    if not spec.available:
        return f"[yellow]not available locally[/]: {escape(spec.unavailable_reason or '')}"
    if spec.trigger_type == HTTP:
        methods = ",".join(spec.methods) if spec.methods else "ALL"
        return f"[cyan]http[/] {methods} {escape(info['url'])} (auth: {spec.auth_level})"
    if spec.trigger_type == EVENT_GRID:
        return f"[cyan]eventGrid[/] POST {escape(info['url'])} (auth: key)"
    if spec.trigger_type == TIMER:
        worker = next(t for t in host.timers if t.spec is spec)
        startup = ", runs on startup" if spec.trigger.get("runOnStartup") else ""
        return f"[cyan]timer[/] {worker.schedule.expression} (UTC{startup})"
    if spec.trigger_type == QUEUE:
        queue = next(q for q in host.queues if q.spec is spec)
        name = queue.binding.queue_name
        return f"[cyan]queue[/] '{name}' (poison: '{name}-poison')"
    return spec.trigger_type


def print_banner(host: LocalHost, base_url: str, *, azurite_started: bool) -> None:
    from rich.console import Console

    console = Console(stderr=True, highlight=False)  # plain URLs, no auto-colouring
    status = host.status(base_url)
    by_name = {f["name"]: f for f in status["functions"]}
    width = max((len(spec.name) for spec in host.functions), default=0)
    console.print("[bold]pitcrew local host[/] - functions:")
    for spec in host.functions:
        line = _function_line(host, spec, by_name[spec.name])
        console.print(f"  [bold]{spec.name:<{width}}[/]  {line}", soft_wrap=True)
    console.print(f"Host status:  GET {base_url}/admin/host/status", soft_wrap=True)
    console.print(
        f"Run a non-HTTP function now:  POST {base_url}/admin/functions/<name> "
        '{"input": "..."} (with the key)',
        soft_wrap=True,
        markup=False,
    )
    console.print(f"Local inbox:  {base_url}/_pitcrew/inbox", soft_wrap=True)
    if azurite_started:
        console.print("Azurite: started by this host (stopped on exit)")
    console.print(
        f"Function key: [bold]{host.function_key}[/]  (?code=<key> or header x-functions-key)",
        soft_wrap=True,
    )
    if host.allow_dev_principal:
        console.print(
            "[bold white on red] WARNING [/] [bold red]--allow-dev-principal: client-sent "
            "X-MS-CLIENT-PRINCIPAL headers are trusted. Anyone who can reach this port can "
            "claim any identity and role. Development only.[/]"
        )
    console.print("Press Ctrl+C to stop.")
