"""The `pitcrew` command: run the local host, send samples, validate policy, read the audit trail.

Operator commands talk to the app's HTTP API (never to the workload's resources directly): the
app performs every change with its own identity and audits who asked.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(
    name="pitcrew",
    help="Keeps a mission-critical Azure workload serviced while it runs.",
    no_args_is_help=True,
    add_completion=False,
)
policy_app = typer.Typer(help="Policy as code: pitcrew.yaml.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
from pitcrew.deadletter.cli import app as dlq_app  # noqa: E402

app.add_typer(dlq_app, name="dlq")

out = Console()
err = Console(stderr=True)
DEV_STATE = Path(".pitcrew") / "dev-host.json"


# ------------------------------------------------------------------ policy


@policy_app.command("validate")
def policy_validate(
    file: Annotated[Path, typer.Argument(help="Policy file to check.")] = Path("pitcrew.yaml"),
) -> None:
    """Validate a policy file; exit 1 listing every problem (which key, what is wrong)."""
    from pitcrew.errors import PolicyInvalid
    from pitcrew.policy import load_policy

    try:
        policy = load_policy(file)
    except PolicyInvalid as exc:
        err.print(f"[red]✗ {exc.source} is invalid[/red] ({len(exc.problems)} problem(s)):")
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    from pitcrew.policy import hook_problems

    problems = hook_problems(policy, search_path=[str(Path.cwd()), str(file.resolve().parent)])
    if problems:
        err.print(f"[red]✗ {file} is invalid[/red] ({len(problems)} problem(s)):")
        for problem in problems:
            err.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    out.print(
        f"[green]✓ {file} is valid[/green]: mode {policy.mode}, "
        f"{len(policy.channels)} channel(s), {len(policy.routes)} route(s)"
    )


# ------------------------------------------------------------------ local development


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 7071,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind (loopback by default; must be loopback with "
            "--allow-dev-principal)."
        ),
    ] = "127.0.0.1",
    policy: Annotated[
        Path | None, typer.Option(help="Policy file (sets PITCREW_POLICY_PATH).")
    ] = None,
    function_key: Annotated[
        str | None,
        typer.Option(envvar="PITCREW_FUNCTION_KEY", help="Functions key (random if not given)."),
    ] = None,
    allow_dev_principal: Annotated[
        bool,
        typer.Option(
            "--allow-dev-principal",
            help="Trust a client-sent X-MS-CLIENT-PRINCIPAL from loopback peers (simulates "
            "App Service Authentication). Development only: any local process can claim any "
            "role. Refused unless --host is a loopback address.",
        ),
    ] = False,
    dev_principal: Annotated[
        str,
        typer.Option(
            help="With --allow-dev-principal: the principal the CLI presents to this host, "
            "NAME:ROLE,ROLE (other clients send their own X-MS-CLIENT-PRINCIPAL).",
        ),
    ] = "developer@localhost:Reader,Operator,Rotator",
    module: Annotated[str, typer.Option(help="Module holding the FunctionApp.")] = "function_app",
    local_azure: Annotated[
        bool,
        typer.Option(help="Start the local Azure endpoint (Key Vault, ARM) for the adapters."),
    ] = True,
    azure_seed: Annotated[
        Path | None,
        typer.Option(help="Seed for the local Azure endpoint (vaults, secrets, resources)."),
    ] = None,
    azurite_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=65533,
            help="First of Azurite's three ports (blob, queue, table = PORT, PORT+1, PORT+2).",
        ),
    ] = 10000,
) -> None:
    """Run the function app locally the way Core Tools does, with Azurite for storage and the
    local Azure endpoint for Key Vault and ARM."""
    from pitcrew.local.azurite import ports_from
    from pitcrew.local.host import check_dev_principal_binding, serve

    try:
        check_dev_principal_binding(host, allow_dev_principal)
    except ValueError as exc:
        _fail(f"pitcrew dev: {exc}")
        raise typer.Exit(2) from None

    def remember(_: Any, base_url: str) -> None:
        # `pitcrew send` and the operator commands find the running host and its key here.
        DEV_STATE.parent.mkdir(exist_ok=True)
        state = {"url": base_url, "key": key}
        if allow_dev_principal:
            state["devPrincipal"] = dev_principal
        DEV_STATE.write_text(json.dumps(state))
        DEV_STATE.chmod(0o600)

    import secrets

    key = function_key or secrets.token_urlsafe(24)
    endpoint = _start_local_azure(azure_seed) if local_azure else None
    try:
        serve(
            module,
            host=host,
            port=port,
            function_key=key,
            allow_dev_principal=allow_dev_principal,
            azurite_location=Path(".azurite"),
            azurite_ports=ports_from(azurite_port),
            policy_path=policy.resolve() if policy else None,
            on_ready=remember,
        )
    except (OSError, RuntimeError, ValueError) as exc:
        # Start-up problems (busy port, Azurite missing, a bad schedule) are the user's to fix:
        # say what is wrong, without a traceback.
        _fail(f"pitcrew dev could not start: {exc}")
        raise typer.Exit(1) from None
    finally:
        DEV_STATE.unlink(missing_ok=True)
        if endpoint is not None:
            endpoint.stop()


DEMO_AZURE_SEED = Path("examples") / "local-azure.demo.json"


def _start_local_azure(seed: Path | None) -> Any:
    """The local Azure endpoint, its state kept in .pitcrew/ across restarts; its environment
    (URL, vault URLs, CA bundle) is exported so the app's adapters find it."""
    from pitcrew.local.azure_endpoint import start_local_azure

    seed = seed or (DEMO_AZURE_SEED if DEMO_AZURE_SEED.exists() else None)
    state = Path(".pitcrew")
    state.mkdir(exist_ok=True)
    endpoint = start_local_azure(
        state_path=state / "local-azure.sqlite",
        cert_dir=state / "local-azure-tls",
        config=seed,
    )
    os.environ.update(endpoint.environment())
    # Consumers' topic for pitcrew.SecretRotated: the endpoint's, unless one is configured.
    os.environ.setdefault("PITCREW_EVENTGRID_TOPIC_ENDPOINT", endpoint.topic_endpoint())
    out.print(
        f"local Azure endpoint: {endpoint.url} (vaults: "
        f"{', '.join(sorted(endpoint.vault_urls)) or 'none'})",
        highlight=False,
    )
    return endpoint


def _fail(message: str) -> None:
    """One red line on stderr, never wrapped, the message shown as is (no markup)."""
    from rich.markup import escape

    err.print(f"[red]✗ {escape(message)}[/red]", highlight=False, soft_wrap=True)


def _dev_host() -> dict[str, str]:
    try:
        return dict(json.loads(DEV_STATE.read_text()))
    except (OSError, ValueError):
        return {}


@app.command()
def send(
    file: Annotated[Path, typer.Argument(help="A sample payload (see ../shared/samples).")],
    function: Annotated[
        str | None, typer.Option("--function", help="Target function (default: by event type).")
    ] = None,
    url: Annotated[str | None, typer.Option(envvar="PITCREW_URL", help="Host base URL.")] = None,
    key: Annotated[
        str | None, typer.Option(envvar="PITCREW_FUNCTION_KEY", help="Functions key.")
    ] = None,
) -> None:
    """Post a sample with the headers Event Grid (or an action group) would send."""
    from pitcrew.local.send import HostUnreachable, SendError, send_sample

    running = _dev_host()
    try:
        response = send_sample(
            file,
            base_url=url or running.get("url", "http://127.0.0.1:7071"),
            function=function,
            function_key=key or running.get("key"),
        )
    except HostUnreachable as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    except SendError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    colour = "green" if response.is_success else "red"
    out.print(f"[{colour}]{response.status_code} {response.reason_phrase}[/{colour}]")
    if response.content:
        try:
            out.print_json(response.text)
        except ValueError:
            out.print(response.text, markup=False)
    if not response.is_success:
        raise typer.Exit(1)


# ------------------------------------------------------------------ operator API


def api_client() -> Any:
    from pitcrew.client import ApiClient

    running = _dev_host()
    return ApiClient.from_env(
        default_url=running.get("url"),
        default_key=running.get("key"),
        dev_principal=running.get("devPrincipal"),
    )


@app.command()
def audit(
    since: Annotated[str | None, typer.Option(help="ISO 8601 start (default: a day ago).")] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO 8601 end (default: now); at most 31 days after --since.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only records for this target.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only records by this actor (e.g. user:alice@contoso.com).")
    ] = None,
    action: Annotated[str | None, typer.Option(help="Only records of this action.")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, max=1000, help="Records per page (server default 100).")
    ] = None,
    continuation: Annotated[
        str | None, typer.Option(help="Token printed by the previous page: fetch the next one.")
    ] = None,
    follow_all: Annotated[
        bool, typer.Option("--all", help="Follow continuation tokens: every record in the range.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Read the audit trail through the app's API (role Reader), a page at a time."""
    from rich.table import Table

    given = {"since": since, "until": until, "target": target, "actor": actor, "action": action}
    params = {k: v for k, v in given.items() if v}
    if limit is not None:
        params["limit"] = str(limit)
    elif follow_all:
        params["limit"] = "1000"
    client = api_client()
    records: list[dict[str, Any]] = []
    token = continuation
    while True:
        page_params = {**params, "continuation": token} if token else params
        body = client.get("/api/audit", params=page_params)
        records += body.get("records", [])
        token = body.get("continuation")
        if not token or not follow_all:
            break
    if as_json:
        out.print_json(json.dumps(records))
    else:
        table = Table("time", "actor", "action", "target", "outcome", "correlation id")
        for r in records:
            table.add_row(
                r["time"], r["actor"], r["action"], r["target"], r["outcome"], r["correlationId"]
            )
        out.print(table)
    if token:
        # On stderr, so --json output stays one JSON document.
        err.print(
            f"more records: repeat with --continuation {token} (same filters), or use --all",
            highlight=False, soft_wrap=True, markup=False,
        )


# ------------------------------------------------------------------ rotation

from pitcrew.rotation.cli import rotate, rotations  # noqa: E402 - commands live with their area

app.command("rotate")(rotate)
app.command("rotations")(rotations)


def main() -> None:
    from pitcrew.client import ApiError

    try:
        app()
    except ApiError as exc:
        _fail(str(exc))
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
