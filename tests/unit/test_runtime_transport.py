"""The Storage transport reads the environment once, when it is built, yet keeps honouring it:
HTTP(S)_PROXY sends requests through the proxy, NO_PROXY bypasses it, REQUESTS_CA_BUNDLE
still verifies. Requests go to a loopback server standing in for the proxy (no network)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from pitcrew.runtime import pooled_transport

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                    "https_proxy", "all_proxy", "no_proxy", "REQUESTS_CA_BUNDLE",
                    "CURL_CA_BUNDLE")


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Answers 200 with the request line it got: an absolute URI means it was the proxy."""

    def do_GET(self) -> None:
        body = self.requestline.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_requests_go_through_the_proxy_the_environment_names(
    proxy: str, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTP_PROXY", proxy)
    session = pooled_transport().session
    assert session.trust_env is False  # nothing re-read per request
    response = session.request("GET", "http://account.queue.example.invalid/q/messages",
                               timeout=5)
    assert response.text == "GET http://account.queue.example.invalid/q/messages HTTP/1.1"


def test_no_proxy_is_honoured_per_host(proxy: str, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTP_PROXY", proxy)
    clean_env.setenv("NO_PROXY", "127.0.0.1,.blob.example.invalid")
    session = pooled_transport().session
    assert session.environment_proxies("http://acct.blob.example.invalid/c/b") == {}
    assert session.environment_proxies("http://acct.queue.example.invalid/q")["http"] == proxy
    # Reached directly: the server sees a path, not an absolute URI.
    response = session.request("GET", f"{proxy}/direct", timeout=5)
    assert response.text == "GET /direct HTTP/1.1"


def test_the_environment_is_read_once(proxy: str, clean_env: pytest.MonkeyPatch) -> None:
    """The CA bundle when the transport is built, an origin's proxy when it is first reached;
    a later change of the environment reaches transports built after it."""
    before = pooled_transport().session
    assert before.environment_proxies("http://acct.queue.example.invalid/q") == {}
    clean_env.setenv("HTTP_PROXY", proxy)
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/bundle-of-this-process.pem")
    assert before.environment_proxies("http://acct.queue.example.invalid/other") == {}
    assert before.environment_verify is None
    after = pooled_transport().session
    assert after.environment_proxies("http://acct.queue.example.invalid/q")["http"] == proxy
    settings = after.merge_environment_settings(
        "https://acct.queue.example.invalid/q", {}, None, True, None)
    assert settings["verify"] == "/etc/ssl/certs/bundle-of-this-process.pem"
    assert settings["proxies"]["http"] == proxy
    # An explicit verify (the SDK's connection_verify) wins, as with requests' trust_env.
    assert after.merge_environment_settings(
        "https://acct.queue.example.invalid/q", {}, None, False, None)["verify"] is False
