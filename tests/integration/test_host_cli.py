"""The CLI when the host is down, goes away mid-request or never answers: one line, exit 1,
naming the URL and what failed; never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pitcrew.cli.client import ApiClient, ApiError
from pitcrew_dev.send import HostUnreachable, send_sample
from tests.conftest import SAMPLES

REPO = Path(__file__).resolve().parents[2]
SAMPLE = SAMPLES / "keyvault-secret-near-expiry.eventgrid.json"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once it is closed


@pytest.fixture
def vanishing_host() -> Iterator[str]:
    """A host that lists its functions, then drops the connection on every POST, as a host
    killed mid-request does."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (
                b'{"functions": [{"name": "on_keyvault_event", "trigger": "eventGridTrigger"}]}'
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.close_connection = True  # no answer: the socket just closes

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_host() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _pitcrew(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PITCREW_")}
    environment.update(PYTHONPATH=str(REPO), COLUMNS="60", **env)  # narrow: no wrapping either
    return subprocess.run(
        [sys.executable, "-m", "pitcrew.cli", *args],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_send_when_the_host_goes_away_is_one_line(vanishing_host: str, tmp_path: Path) -> None:
    result = _pitcrew(tmp_path, "send", str(SAMPLE), "--url", vanishing_host, "--key", "k")
    assert result.returncode == 1
    line = _one_line(result)
    assert f"POST {vanishing_host}/runtime/webhooks/eventgrid failed" in line
    assert "closed before an answer" in line


def test_send_with_no_host_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = _pitcrew(tmp_path, "send", str(SAMPLE), "--url", url)
    assert result.returncode == 1
    line = _one_line(result)
    assert f"GET {url}/admin/host/status failed: cannot connect" in line


@pytest.mark.parametrize("command", [["audit"], ["rotations"], ["dlq", "groups"]])
def test_operator_commands_with_no_host_are_one_line(tmp_path: Path, command: list[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = _pitcrew(tmp_path, *command, PITCREW_URL=url)
    assert result.returncode == 1
    line = _one_line(result)
    assert f"{url}/api/" in line and "failed: cannot connect" in line


def test_timeouts_name_the_url_and_the_wait(silent_host: str) -> None:
    with pytest.raises(ApiError) as api_error:
        ApiClient(silent_host, timeout=0.5).get("/api/audit")
    assert str(api_error.value) == f"GET {silent_host}/api/audit failed: no answer within 0.5s"
    with pytest.raises(HostUnreachable) as send_error:
        send_sample(SAMPLE, base_url=silent_host, timeout=0.5)
    assert str(send_error.value) == (
        f"GET {silent_host}/admin/host/status failed: no answer within 0.5s"
    )
