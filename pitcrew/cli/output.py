"""What the CLI prints: the two consoles, the one-line failure, --json and the next page.

What the app answers (a silence's comment, an alert rule, an error from Azure) is shown as
text, never read as Rich markup: in a table through `cell`, in a line through `Text` or
`markup=False`. A '[/]' in a comment would otherwise end the command with a MarkupError, and
'[link=...]' would turn someone else's text into a link.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.text import Text

out = Console()
err = Console(stderr=True)


def fail(message: str) -> None:
    """One red line on stderr, never wrapped, the message shown as is (no markup)."""
    from rich.markup import escape

    err.print(f"[red]✗ {escape(message)}[/red]", highlight=False, soft_wrap=True)


def printed_json(body: Any, as_json: bool) -> bool:
    """With --json, the answer as one JSON document (the command prints nothing else)."""
    if as_json:
        out.print_json(json.dumps(body))
    return as_json


def more(token: str | None) -> None:
    """After a page that is not the last: how to get the next one."""
    if token:
        out.print(f"more: --continuation {token} (or --all)", highlight=False, markup=False,
                  soft_wrap=True)


def cell(value: Any, style: str = "") -> Text:
    """A value the app answered, as a table cell or a piece of a line: shown as is."""
    return Text("" if value is None else str(value), style=style)
