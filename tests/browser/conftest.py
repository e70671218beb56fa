"""Browser tests of the operator console: Debian's chromium, driven headless by Playwright for
Python (its wheel carries the driver; no browser is downloaded), against the real function app
on the local host (Azurite, the development principal signed in through the emulated
App Service Authentication cookie). `make test` installs chromium when it is missing; without
it these tests FAIL with what to do, they never skip."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import function_app
from pitcrew_dev.host import build_host, serving
from tests.integration.test_deadletter_storage import write_policy

KEY = "browser-test-key"
SHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def chromium_path() -> str:
    configured = os.environ.get("PITCREW_CHROMIUM")
    for candidate in (configured, shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("chromium is not installed, so the console's browser tests cannot run. "
                "`make test` installs it (apt-get install -y chromium chromium-driver); "
                "or set PITCREW_CHROMIUM to a chromium binary.", pytrace=False)


@pytest.fixture(scope="module")  # the sync API holds an event loop; let go of it after the module
def browser() -> Iterator[Any]:
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: `make install` installs it "
                    "(requirements-dev.txt)", pytrace=False)
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def console_host(pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[tuple[str, str]]:
    """The function app on the local host with a dead-letter source; (base URL, queue)."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    write_policy(pitcrew_env, (
        "deadletter:\n  scan_max_messages: 25\n  edit: {allowed: true}\n"
        "  replay: {default_rate: 100, max_rate: 500}\n  sources:\n"
        f"    - name: orders\n      type: storage-queue\n      queue: {unique_name}\n"))
    host = build_host(function_app.app, function_key=KEY, allow_dev_principal=True,
                      settings=os.environ)
    with serving(host) as url:
        yield url, unique_name


class Console:
    """A signed-in browser page on the console, failing the test on any page error or
    Content-Security-Policy violation."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", lambda msg: self.errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" and "status of 40" not in msg.text else None)

    def open(self, view: str) -> None:
        """Go to a view the way a click on a link does (a hash change), and wait for it."""
        self.page.evaluate("""(hash) => {
            document.body.dataset.ready = 'false';
            if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
            else location.hash = hash;
        }""", f"#/{view}")
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.wait_for_selector("body[data-ready='true']", timeout=15_000)

    def shot(self, name: str) -> Path:
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def sign_in(browser: Any, console_host: tuple[str, str]) -> Iterator[Any]:
    """sign_in(name, roles, **context options) -> Console, signed in at /.auth/login/aad."""
    contexts: list[Any] = []

    def open_console(name: str = "ops@example.com", roles: str = "Reader,Operator,Rotator",
                     **options: Any) -> Console:
        context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **options})
        contexts.append(context)
        page = context.new_page()
        base = console_host[0]
        console = Console(page, base)
        page.goto(f"{base}/.auth/login/aad?name={name}&roles={roles}"
                  "&post_login_redirect_uri=/api/console/")
        console.wait_ready()
        return console

    yield open_console
    for context in contexts:
        context.close()
