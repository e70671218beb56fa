"""Start Azurite (the official Storage emulator, pinned in package.json) when nothing answers.

Both `pitcrew dev` and the test session use this, so there is one way Azurite is found or started.
An Azurite this process starts dies with it: on Linux the kernel sends it SIGTERM when the process
that started it dies, even by `kill -9`, so no orphan holds the ports for the next start.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pitcrew.runtime import AZURITE_ACCOUNT_KEY, AZURITE_ACCOUNT_NAME

AZURITE_PORTS = (10000, 10001, 10002)  # blob, queue, table: what UseDevelopmentStorage means
REPO_ROOT = Path(__file__).resolve().parents[1]
_PR_SET_PDEATHSIG = 1


def connection_string(host: str = "127.0.0.1", ports: tuple[int, int, int] = AZURITE_PORTS) -> str:
    blob, queue, table = ports
    account = AZURITE_ACCOUNT_NAME
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob}/{account};"
        f"QueueEndpoint=http://{host}:{queue}/{account};"
        f"TableEndpoint=http://{host}:{table}/{account};"
    )


def ports_from(first: int) -> tuple[int, int, int]:
    """Blob, queue and table ports: `first` and the two after it."""
    if not 1 <= first <= 65533:
        raise ValueError(f"the first Azurite port must be from 1 to 65533, not {first}")
    return first, first + 1, first + 2


def describe_ports(ports: tuple[int, int, int]) -> str:
    return f"{ports[0]}-{ports[2]}" if ports == ports_from(ports[0]) else ",".join(map(str, ports))


class AzuriteUnavailable(RuntimeError):
    """Azurite is neither running nor installed where pitcrew looks for it."""


@dataclass
class Azurite:
    """A running Azurite; `started` says whether this process started it (and must stop it)."""

    connection_string: str
    started: bool
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    ports: tuple[int, int, int] = AZURITE_PORTS

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


def _port_answers(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _azurite_binary() -> Path:
    local = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return local
    raise AzuriteUnavailable(
        f"Azurite is not installed at {local} and nothing answers on ports "
        f"{AZURITE_PORTS}: run `npm ci` in {REPO_ROOT} (make run and make test do it)."
    )


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGTERM the child when its parent dies (Linux).

    prctl is resolved here, before the fork, so the child only makes two system calls. The
    signal follows the parent *thread*: call ensure_azurite from a thread that lives as long
    as the Azurite should (the main thread, in `pitcrew dev` and the test session).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def ensure_azurite(
    *,
    location: Path | None = None,
    timeout_seconds: float = 30.0,
    ports: tuple[int, int, int] = AZURITE_PORTS,
) -> Azurite:
    """Return a running Azurite on `ports` (blob, queue, table), starting one from node_modules
    when no port answers.

    `location` persists data there; without it, data lives in memory (tests).
    Azurite that this call starts is stopped at interpreter exit as well as by `stop()`, and
    on Linux when this process dies in any way.
    """
    conn = connection_string(ports=ports)
    answering = [p for p in ports if _port_answers(p)]
    if len(answering) == len(ports):
        return Azurite(connection_string=conn, started=False, ports=ports)
    if answering:
        raise AzuriteUnavailable(
            f"ports {answering} answer but {sorted(set(ports) - set(answering))} do not: "
            "something other than a complete Azurite holds them; stop it and retry."
        )
    if shutil.which("node") is None:
        raise AzuriteUnavailable("Node.js is not on PATH; Azurite needs it (node 20 or newer).")
    blob, queue, table = ports
    args = [
        str(_azurite_binary()),
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--blobPort", str(blob),
        "--queuePort", str(queue),
        "--tablePort", str(table),
    ]  # fmt: skip
    if location is None:
        args.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent(),  # two system calls, resolved before the fork
    )
    handle = Azurite(connection_string=conn, started=True, process=process, ports=ports)
    atexit.register(handle.stop)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise AzuriteUnavailable(
                f"Azurite exited with code {process.returncode}: {err.strip()}"
            )
        if all(_port_answers(p) for p in ports):
            return handle
        time.sleep(0.1)
    handle.stop()
    raise AzuriteUnavailable(f"Azurite did not answer on {ports} within {timeout_seconds}s")
