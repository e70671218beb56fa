"""The local host's rules without Azurite: routes, host.json, schedules, settings, startup."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.functions as func
import httpx
import pytest

from pitcrew_dev.catalog import RouteTemplate
from pitcrew_dev.host import build_host, serving
from pitcrew_dev.hostconfig import (
    HostConfig,
    HostConfigError,
    load_local_settings,
    parse_timespan,
)
from pitcrew_dev.timers import Schedule

KEY = "parts-key"


@pytest.fixture(autouse=True)
def _restore_auth_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    # build_host sets WEBSITE_AUTH_ENABLED; monkeypatch restores it after each test.
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "")


def test_route_templates() -> None:
    optional = RouteTemplate.compile("items/{id:int}/{part?}")
    assert optional.match("/items/42") == {"id": "42"}
    assert optional.match("/items/42/head") == {"id": "42", "part": "head"}
    assert optional.match("/items/abc") is None
    catch_all = RouteTemplate.compile("files/{*path}")
    assert catch_all.match("/files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert RouteTemplate.compile("Health").match("/health") == {}  # case-insensitive
    with pytest.raises(ValueError, match="constraint"):
        RouteTemplate.compile("x/{id:regex}")


def test_timespans_and_host_json(tmp_path: Path) -> None:
    assert parse_timespan("00:00:30", field="f") == timedelta(seconds=30)
    assert parse_timespan("1.02:00:00", field="f") == timedelta(days=1, hours=2)
    assert parse_timespan("00:00:00.500", field="f") == timedelta(milliseconds=500)
    with pytest.raises(HostConfigError, match="visibilityTimeout"):
        HostConfig.from_dict({"extensions": {"queues": {"visibilityTimeout": "30s"}}})
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"extensions": {"http": {"routePrefix": ""}}}))
    config = HostConfig.load(path)
    assert config.route_prefix == ""
    assert config.queues.max_dequeue_count == 5  # the host default
    assert HostConfig.load(tmp_path / "missing.json") == HostConfig()


def test_local_settings_never_override_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {"A": "from-file", "B": "from-file"}}))
    env = {"A": "from-env"}
    assert load_local_settings(path, env) == ["B"]
    assert env == {"A": "from-env", "B": "from-file"}


def test_schedules() -> None:
    every_five = Schedule.parse("%S%", {"S": "*/5 * * * * *"}, function_name="t")
    start = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert every_five.next_after(start) == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    interval = Schedule.parse("00:10:00", {}, function_name="t")
    assert interval.next_after(start) == start + timedelta(minutes=10)
    with pytest.raises(HostConfigError, match="6-field"):
        Schedule.parse("*/5 * * * *", {}, function_name="t")
    with pytest.raises(HostConfigError, match="%MISSING%"):
        Schedule.parse("%MISSING%", {}, function_name="t")


def _small_app() -> tuple[func.FunctionApp, list[bool]]:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    started: list[bool] = []

    @app.route(route="ping", methods=["GET"])
    def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("pong")

    @app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
    def yearly(timer: func.TimerRequest) -> None:
        started.append(timer.past_due)

    return app, started


def test_route_prefix_from_host_json_is_honoured() -> None:
    app, _ = _small_app()
    host = build_host(app, function_key=KEY, settings={}, host_config=HostConfig(route_prefix=""))
    with serving(host) as base:
        assert httpx.get(f"{base}/ping").text == "pong"
        assert httpx.get(f"{base}/api/ping").status_code == 404


def test_run_on_startup_fires_once_at_start() -> None:
    app, started = _small_app()
    host = build_host(app, function_key=KEY, settings={})
    with serving(host) as base:
        assert httpx.get(f"{base}/api/ping").text == "pong"
        deadline = time.monotonic() + 10
        while not started and time.monotonic() < deadline:
            time.sleep(0.05)
    assert started == [False]


def _whoami_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="whoami", methods=["GET"])
    def whoami(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            json.dumps({"principal": req.headers.get("x-ms-client-principal")}),
            mimetype="application/json",
        )

    return app


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        (("127.0.0.1", 50000), True),
        (("::1", 50000), True),
        (("10.0.0.5", 1234), False),
        (("192.168.1.20", 1234), False),
        (("2001:db8::7", 1234), False),
    ],
)
def test_dev_principal_is_honoured_from_loopback_peers_only(
    peer: tuple[str, int], trusted: bool
) -> None:
    host = build_host(_whoami_app(), function_key=KEY, allow_dev_principal=True, settings={})
    principal = "eyJjbGFpbXMiOltdfQ=="  # {"claims":[]}

    async def call() -> httpx.Response:
        # The ASGI app itself, with the peer address the server would put in the scope.
        transport = httpx.ASGITransport(app=host, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://pitcrew") as client:
            return await client.get(
                "/api/whoami", headers={"X-MS-CLIENT-PRINCIPAL": principal}
            )

    response = asyncio.run(call())
    assert response.status_code == 200
    assert response.json()["principal"] == (principal if trusted else None)


def test_dev_principal_needs_a_loopback_bind() -> None:
    from pitcrew_dev.host import check_dev_principal_binding

    for address in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_dev_principal_binding(address, True)
    for address in ("0.0.0.0", "::", "10.0.0.5", "pitcrew.example.com"):  # noqa: S104
        check_dev_principal_binding(address, False)  # without the flag any address will do
        with pytest.raises(ValueError, match="needs a loopback address"):
            check_dev_principal_binding(address, True)
