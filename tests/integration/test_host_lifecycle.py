"""`pitcrew dev` as its own process: it ends on SIGTERM with a request in flight, refuses to
trust the development principal off loopback, says when it reuses an Azurite, and the Azurite
it started does not outlive it, even after `kill -9`.

Hang guards are generous upper bounds (15 s), not timing assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pitcrew_dev.azurite import Azurite

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD = 15.0

_APP = '''
import time
from pathlib import Path

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> func.HttpResponse:
    Path("slow-started").write_text("yes")
    time.sleep(600)  # a request that will not finish on its own while the test runs
    return func.HttpResponse("late")
'''


def eventually(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def _project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(_APP)
    return tmp_path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("AzureWebJobsStorage", None)  # the host finds (or starts) Azurite itself
    env.pop("PITCREW_FUNCTION_KEY", None)
    return env


@contextlib.contextmanager
def _dev(cwd: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`pitcrew dev` on a free port without the local Azure endpoint; killed if still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pitcrew.cli", "dev", "--module", "app", "--port", "0",
         "--no-local-azure", *args],
        cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=HANG_GUARD)


def _base_url(cwd: Path, process: subprocess.Popen[bytes]) -> str:
    state = cwd / ".pitcrew" / "dev-host.json"

    def ready() -> str | None:
        assert process.poll() is None, "pitcrew dev exited during start-up"
        return json.loads(state.read_text())["url"] if state.exists() else None

    return str(eventually(ready, what="pitcrew dev to write .pitcrew/dev-host.json"))


def test_sigterm_ends_the_host_with_a_request_in_flight(tmp_path: Path, azurite: Azurite) -> None:
    cwd = _project(tmp_path)
    with _dev(cwd) as process:
        base = _base_url(cwd, process)
        outcome: dict[str, Any] = {}

        def call_slow() -> None:
            try:
                outcome["status"] = httpx.get(f"{base}/api/slow", timeout=120).status_code
            except httpx.HTTPError as exc:
                outcome["error"] = type(exc).__name__

        caller = threading.Thread(target=call_slow, daemon=True)
        caller.start()
        eventually(lambda: (cwd / "slow-started").exists(), what="the slow request to start")
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            pytest.fail(f"pitcrew dev still running {HANG_GUARD}s after SIGTERM")
        caller.join(HANG_GUARD)
    text = output.decode(errors="replace")
    assert process.returncode == 128 + signal.SIGTERM, text
    assert outcome, "the in-flight request never got an answer or an error"
    assert not (cwd / ".pitcrew" / "dev-host.json").exists()  # cleaned up on the way out
    # The session's Azurite (not started by this host) was reused, and the host said so.
    assert "reusing Azurite already listening on 10000-10002 (not started by this host)" in text


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.10"])  # noqa: S104
def test_dev_principal_is_refused_off_loopback(tmp_path: Path, address: str) -> None:
    cwd = _project(tmp_path)
    with _dev(cwd, "--allow-dev-principal", "--host", address) as process:
        try:
            output, _ = process.communicate(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            pytest.fail(f"pitcrew dev started on {address} with --allow-dev-principal")
    text = output.decode(errors="replace")
    assert process.returncode == 2, text
    assert "--allow-dev-principal needs a loopback address" in text
    assert "Traceback" not in text
    assert not (cwd / ".pitcrew" / "dev-host.json").exists()


def _free_port_triple() -> int:
    for _ in range(50):
        first = random.randrange(30000, 60000)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + 3):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    raise AssertionError("no three consecutive free ports")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its reaping is left


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_azurite_started_by_the_host_dies_with_it_after_kill_9(tmp_path: Path) -> None:
    # Non-default ports, so the Azurite on 10000-10002 that other tests share is never touched.
    first = _free_port_triple()
    cwd = _project(tmp_path)
    azurite_pid = None
    try:
        with _dev(cwd, "--azurite-port", str(first)) as process:
            _base_url(cwd, process)
            azurite_pid = next(
                pid for pid in _children(process.pid)
                if b"azurite" in Path(f"/proc/{pid}/cmdline").read_bytes()
            )
            assert _alive(azurite_pid) and all(_answers(p) for p in range(first, first + 3))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=HANG_GUARD)
            eventually(lambda: not _alive(azurite_pid), timeout=HANG_GUARD,
                       what="the Azurite child to die with its host")
            eventually(lambda: not any(_answers(p) for p in range(first, first + 3)),
                       timeout=HANG_GUARD, what="Azurite's ports to close")
    finally:
        if azurite_pid is not None and _alive(azurite_pid):
            os.kill(azurite_pid, signal.SIGKILL)  # the test's own orphan: never leave it
