"""`pitcrew policy validate [FILE]`: check pitcrew.yaml offline, every problem named."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from pitcrew.cli.output import err, out
from pitcrew.errors import PolicyInvalid

app = typer.Typer(help="Policy as code: pitcrew.yaml.", no_args_is_help=True)


@app.command("validate")
def policy_validate(
    file: Annotated[Path, typer.Argument(help="Policy file to check.")] = Path("pitcrew.yaml"),
    settings: Annotated[bool, typer.Option(
        "--settings",
        help="Also check, in this environment (the app's settings), every app setting the "
        "policy names, as run time reads it.")] = False,
) -> None:
    """Validate a policy file; exit 1 listing every problem (which key, what is wrong)."""
    # lazy: the policy model (pydantic, PyYAML) loads only when this command runs, so the
    # other commands start without it
    from pitcrew.policy import hook_problems, load_policy

    try:
        policy = load_policy(file)
    except PolicyInvalid as exc:
        err.print(f"[red]✗ {exc.source} is invalid[/red] ({len(exc.problems)} problem(s)):")
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    problems = hook_problems(policy, search_path=[str(Path.cwd()), str(file.resolve().parent)])
    if settings:
        # Only when asked: a policy is usually validated offline (CI), where the app's settings
        # are not; run time reads them from its environment, so this reads this one.
        from pitcrew.policy_settings import settings_problems

        problems += settings_problems(policy, os.environ)
    if problems:
        err.print(f"[red]✗ {file} is invalid[/red] ({len(problems)} problem(s)):")
        for problem in problems:
            err.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    out.print(
        f"[green]✓ {file} is valid[/green]: mode {policy.mode}, "
        f"{len(policy.receivers)} receiver(s), {_count_routes(policy.route_tree())} route(s)"
        + (", app settings checked" if settings else "")
    )


def _count_routes(node: Any) -> int:
    return 1 + sum(_count_routes(child) for child in node.routes)
