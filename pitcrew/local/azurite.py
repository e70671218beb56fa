"""Start Azurite (the official Storage emulator, pinned in package.json) when nothing answers.

Both `pitcrew dev` and the test session use this, so there is one way Azurite is found or started.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pitcrew.runtime import azurite_connection_string

AZURITE_PORTS = (10000, 10001, 10002)
REPO_ROOT = Path(__file__).resolve().parents[2]


def connection_string(host: str = "127.0.0.1") -> str:
    return azurite_connection_string(host)


class AzuriteUnavailable(RuntimeError):
    """Azurite is neither running nor installed where pitcrew looks for it."""


@dataclass
class Azurite:
    """A running Azurite; `started` says whether this process started it (and must stop it)."""

    connection_string: str
    started: bool
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

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


def ensure_azurite(*, location: Path | None = None, timeout_seconds: float = 30.0) -> Azurite:
    """Return a running Azurite, starting one from node_modules when no port answers.

    `location` persists data there; without it, data lives in memory (tests).
    Azurite that this call starts is stopped at interpreter exit as well as by `stop()`.
    """
    answering = [p for p in AZURITE_PORTS if _port_answers(p)]
    if len(answering) == len(AZURITE_PORTS):
        return Azurite(connection_string=connection_string(), started=False)
    if answering:
        raise AzuriteUnavailable(
            f"ports {answering} answer but {sorted(set(AZURITE_PORTS) - set(answering))} do not: "
            "something other than a complete Azurite holds them; stop it and retry."
        )
    if shutil.which("node") is None:
        raise AzuriteUnavailable("Node.js is not on PATH; Azurite needs it (node 20 or newer).")
    args = [
        str(_azurite_binary()),
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
    ]
    if location is None:
        args.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    handle = Azurite(connection_string=connection_string(), started=True, process=process)
    atexit.register(handle.stop)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise AzuriteUnavailable(
                f"Azurite exited with code {process.returncode}: {err.strip()}"
            )
        if all(_port_answers(p) for p in AZURITE_PORTS):
            return handle
        time.sleep(0.1)
    handle.stop()
    raise AzuriteUnavailable(f"Azurite did not answer on {AZURITE_PORTS} within {timeout_seconds}s")
