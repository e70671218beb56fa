"""`pitcrew dev` and `pitcrew send`: the development commands.

They drive the development tooling in `pitcrew_dev` (the local host, the local Azure endpoint,
the sample sender), which is never deployed. This is the one module of `pitcrew` that may name
`pitcrew_dev`, and only inside these commands' functions (imported when the command runs, so
importing the CLI, let alone the app, never imports it; tests/functions/test_layout.py checks).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from pitcrew.cli.client import DEV_STATE, dev_host
from pitcrew.cli.output import cell, fail, out

DEMO_AZURE_SEED = Path("examples") / "local-azure.demo.json"


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
    from pitcrew_dev.azurite import ports_from
    from pitcrew_dev.host import check_dev_principal_binding
    from pitcrew_dev.serve import serve

    try:
        check_dev_principal_binding(host, allow_dev_principal)
    except ValueError as exc:
        fail(f"pitcrew dev: {exc}")
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
        fail(f"pitcrew dev could not start: {exc}")
        raise typer.Exit(1) from None
    finally:
        DEV_STATE.unlink(missing_ok=True)
        if endpoint is not None:
            endpoint.stop()


def _start_local_azure(seed: Path | None) -> Any:
    """The local Azure endpoint, its state kept in .pitcrew/ across restarts; its environment
    (URL, vault URLs, CA bundle) is exported so the app's adapters find it."""
    from pitcrew_dev.azure_endpoint import start_local_azure

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
    from pitcrew_dev.send import HostUnreachable, SendError, send_sample

    running = dev_host()
    try:
        response = send_sample(
            file,
            base_url=url or running.get("url", "http://127.0.0.1:7071"),
            function=function,
            function_key=key or running.get("key"),
        )
    except HostUnreachable as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    except SendError as exc:
        fail(str(exc))
        raise typer.Exit(2) from None
    colour = "green" if response.is_success else "red"
    out.print(cell(f"{response.status_code} {response.reason_phrase}", colour))
    if response.content:
        try:
            out.print_json(response.text)
        except ValueError:
            out.print(response.text, markup=False)
    if not response.is_success:
        raise typer.Exit(1)
