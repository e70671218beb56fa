"""`serve()`: run a function app on the local host until interrupted, as `func start` does.

The process around the host (`pitcrew dev`): local.settings.json, Azurite started when nothing
answers, terminal logging and the banner, orderly exit on Ctrl+C and SIGTERM.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from pitcrew_dev import console
from pitcrew_dev.azurite import AZURITE_PORTS, describe_ports, ensure_azurite
from pitcrew_dev.host import (
    LocalHost,
    bind_listener,
    build_host,
    check_dev_principal_binding,
    load_function_app,
    uvicorn_config,
)
from pitcrew_dev.hostconfig import HostConfig, load_local_settings

log = logging.getLogger("pitcrew_dev.host")


def serve(
    module: str = "function_app",
    *,
    host: str = "127.0.0.1",
    port: int = 7071,
    function_key: str | None = None,
    allow_dev_principal: bool = False,
    azurite_location: Path | None = None,
    azurite_ports: tuple[int, int, int] | None = None,
    policy_path: Path | None = None,
    on_ready: Callable[[LocalHost, str], None] | None = None,
) -> None:
    """Run the function app in `module` until interrupted (Ctrl+C or SIGTERM), like `func start`.

    `on_ready(local_host, base_url)` is called once the server listens. With
    `allow_dev_principal` the host must bind a loopback address (ValueError otherwise).
    """
    check_dev_principal_binding(host, allow_dev_principal)
    console.configure_logging()
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    project = _project_dir(module)
    load_local_settings(project / "local.settings.json")
    if policy_path is not None:
        os.environ["PITCREW_POLICY_PATH"] = str(policy_path)
    key = function_key or os.environ.get("PITCREW_FUNCTION_KEY") or secrets.token_urlsafe(32)
    sock = bind_listener(host, port)
    azurite = None
    try:
        # The Functions setting name is mixed-case; environment names are case-sensitive here.
        storage = os.environ.get("AzureWebJobsStorage", "")  # noqa: SIM112
        if not storage or storage.strip().lower() == "usedevelopmentstorage=true":
            azurite = ensure_azurite(
                location=azurite_location, ports=azurite_ports or AZURITE_PORTS
            )
            if not azurite.started:
                # Say so: it may be an orphan of a host that was killed, with other data.
                print(
                    f"reusing Azurite already listening on {describe_ports(azurite.ports)} "
                    "(not started by this host)",
                    file=sys.stderr,
                    flush=True,
                )
            os.environ["AzureWebJobsStorage"] = azurite.connection_string  # noqa: SIM112
        local_host = build_host(
            load_function_app(module),
            function_key=key,
            allow_dev_principal=allow_dev_principal,
            settings=os.environ,
            host_config=HostConfig.load(project / "host.json"),
        )
        bound_port = sock.getsockname()[1]
        base_url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
        server = _Server(
            uvicorn_config(local_host),
            on_started=lambda: _announce(local_host, base_url, azurite, on_ready),
        )
        # uvicorn shuts down gracefully on SIGTERM and then re-raises it to the handler it found;
        # the default one would end the process on the spot and leave Azurite (and the local
        # Azure endpoint) running. Turn it into an orderly exit instead, as Ctrl+C is.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            # uvicorn re-raises Ctrl+C after its graceful shutdown; the workers are stopped.
            log.info("local host stopped")
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        sock.close()
        if azurite is not None and azurite.started:
            azurite.stop()


def _project_dir(module: str) -> Path:
    """Where the module lives: host.json and local.settings.json sit beside it."""
    spec = importlib.util.find_spec(module.partition(":")[0])
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"cannot find module {module!r} (run from the project folder)")
    return Path(spec.origin).resolve().parent


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _announce(
    local_host: LocalHost,
    base_url: str,
    azurite: Any,
    on_ready: Callable[[LocalHost, str], None] | None,
) -> None:
    console.print_banner(
        local_host, base_url, azurite_started=bool(azurite is not None and azurite.started)
    )
    if on_ready is not None:
        on_ready(local_host, base_url)


class _Server(uvicorn.Server):
    """uvicorn.Server that calls back once it listens (uvicorn has no public hook for it)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_started()


__all__ = ["serve"]
