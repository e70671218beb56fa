"""What the CLI prints: the two consoles and the one-line failure."""

from __future__ import annotations

from rich.console import Console

out = Console()
err = Console(stderr=True)


def fail(message: str) -> None:
    """One red line on stderr, never wrapped, the message shown as is (no markup)."""
    from rich.markup import escape

    err.print(f"[red]✗ {escape(message)}[/red]", highlight=False, soft_wrap=True)
