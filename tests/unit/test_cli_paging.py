"""Every list the CLI shows is paged: --limit and --continuation reach the route as its own
`?limit=&continuation=`, --all follows every page, a page that is not the last ends with the
`more: --continuation TOKEN` hint, and running the hinted command shows the next page.

The CLI's own ApiClient talks, over an httpx MockTransport, to the real route handlers; only
the services behind them are in-memory fakes (stores that page by offset, as the Table stores
page by key). So the tests see what the route reads and the token it issues, not a copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from pitcrew.alerting import api as alerting_api
from pitcrew.auth import encode_principal
from pitcrew.cli import client as cli_client
from pitcrew.cli import main as cli
from pitcrew.housekeeping import recovery_api
from pitcrew.http.errors import HttpResult
from pitcrew.http.paging import Page, encode_token
from pitcrew.quota import api as quota_api
from pitcrew.quota.ports import StateFilter

HINT = re.compile(r"^more: --continuation (\S+) \(or --all\)$", re.M)
COUNT = 5  # items each fake list holds: with --limit 2, pages of 2, 2 and 1


def _page(items: list[Any], limit: int, continuation: Mapping[str, Any] | None) -> Page[Any]:
    """A store's page: the decoded token in, the items and the next token out."""
    offset = int((continuation or {}).get("o", 0))
    end = offset + limit
    return Page(items[offset:end], encode_token({"o": end}) if end < len(items) else None)


class Row:
    """An item a store answers: its JSON view, and what the route reads off it."""

    def __init__(self, view: dict[str, Any], **attrs: Any) -> None:
        self.view = view
        self.attrs = attrs

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["attrs"][name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self, *_: Any) -> dict[str, Any]:
        return dict(self.view)


class FakeSilence(Row):
    def state(self, _now: Any) -> str:
        return str(self.view["state"])


def _world() -> SimpleNamespace:
    groups = [Row({"id": f"g{i}", "groupKey": f"g{i}", "receiver": f"r{i % 2}",
                   "nextFlushAt": None}, id=f"g{i}", receiver=f"r{i % 2}")
              for i in range(COUNT)]
    alerts = {f"g{i}": [Row({"status": "firing", "title": "CPU high"},
                            labels={"team": "ab"[i % 2]}, fingerprint=f"f{i}")]
              for i in range(COUNT)}
    silences = [FakeSilence({"id": f"s{i}", "state": ("active", "expired")[i % 2],
                             "matchers": ["team=a"], "endsAt": "2030-01-01T00:00:00Z",
                             "createdBy": "ops", "comment": "c"}) for i in range(COUNT)]
    entries = [Row({"id": f"n{i}", "receiver": f"r{i % 2}", "status": "failed", "attempts": 1,
                    "title": "t", "lastError": None}) for i in range(COUNT)]
    quotas = [Row({"quota": f"q{i}", "location": ("eastus", "westus")[i % 2], "usage": 1,
                   "limit": 10, "percent": 10, "daysToExhaustion": 10 - i, "trendPerDay": 0.1,
                   "level": "ok"}, quota=SimpleNamespace(id=f"q{i}"),
                  location=("eastus", "westus")[i % 2]) for i in range(COUNT)]
    requests = [Row({"created": "2030-01-01T00:00:00Z", "quota": f"scope/x{i}",
                     "location": "eastus", "currentLimit": 1, "newLimit": 2,
                     "status": ("Accepted", "Succeeded")[i % 2], "actor": "ops"},
                    status=("Accepted", "Succeeded")[i % 2]) for i in range(COUNT)]
    checks = [{"check": f"c{i}", "ok": i % 2 == 1, "checkedAt": "2030-01-01T00:00:00Z",
               "resources": [{"resource": f"/x/res{i}", "ok": i % 2 == 1, "problems": []}]}
              for i in range(COUNT)]
    drills = [{"name": f"d{i}", "status": "failed" if i % 2 else "succeeded",
               "account": f"a{i % 2}", "problems": ["last drill failed"] if i % 2 else []}
              for i in range(COUNT)]

    def outbox_page(*, limit: int, status: str | None = None, channel: str | None = None,
                    continuation: Mapping[str, Any] | None = None) -> Page[Any]:
        return _page([e for e in entries if channel in (None, e.view["receiver"])], limit,
                     continuation)

    def quota_page(flt: StateFilter, *, limit: int,
                   continuation: Mapping[str, Any] | None = None) -> Page[Any]:
        return _page([q for q in quotas if flt.location in (None, q.location)], limit,
                     continuation)

    def requests_page(*, limit: int, continuation: Mapping[str, Any] | None = None,
                      status: str | None = None) -> Page[Any]:
        return _page([r for r in requests if status in (None, r.status)], limit, continuation)

    store = SimpleNamespace(groups=lambda: list(reversed(groups)),
                            alerts=lambda group_id: alerts[group_id],
                            firing_alerts=lambda: [a for v in alerts.values() for a in v])
    return SimpleNamespace(
        alerting=SimpleNamespace(
            store=store,
            silences=SimpleNamespace(
                active=lambda now: [],
                page=lambda *, limit, continuation=None: _page(silences, limit, continuation)),
            mutes=lambda *args: {}),
        outbox=SimpleNamespace(page=outbox_page),
        quota=SimpleNamespace(store=SimpleNamespace(page=quota_page),
                              requests=SimpleNamespace(page=requests_page,
                                                       open_requests=lambda: [])),
        recovery=SimpleNamespace(policy=SimpleNamespace(drills=drills), checks=checks),
    )


ROUTES: dict[str, Callable[[Mapping[str, str], Mapping[str, str]], HttpResult]] = {
    "/api/alerts": alerting_api.list_alerts,
    "/api/silences": lambda h, q: alerting_api.silences("GET", h, q, b""),
    "/api/notifications": alerting_api.list_notifications,
    "/api/quota": quota_api.list_quotas,
    "/api/quota/requests": quota_api.list_requests,
    "/api/backups": recovery_api.list_backups,
    "/api/drills": recovery_api.list_drills,
}


@dataclass
class App:
    """The app's list routes behind a MockTransport; the query of every request it got."""

    queries: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        self.queries.append((request.url.path, query))
        result = ROUTES[request.url.path](dict(request.headers), query)
        return httpx.Response(result.status, json=result.body)

    def sent(self, key: str) -> list[str | None]:
        return [q.get(key) for _, q in self.queries]


def answer_with(monkeypatch: pytest.MonkeyPatch,
                handle: Callable[[httpx.Request], httpx.Response]) -> None:
    """Every request the CLI's ApiClient sends (through httpx.request) answered by `handle`,
    in process."""
    transport = httpx.MockTransport(handle)

    def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
        with httpx.Client(transport=transport) as client:
            return client.request(method, url, **kwargs)

    monkeypatch.setattr(httpx, "request", request)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    world = _world()
    for module in (alerting_api, quota_api, recovery_api):
        monkeypatch.setattr(module, "get_services", lambda: world)
    monkeypatch.setattr(recovery_api.backups, "last_results", lambda svc: svc.checks)
    monkeypatch.setattr(recovery_api.drills, "drill_view", lambda svc, rule: rule)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    served = App()
    answer_with(monkeypatch, served.handle)
    reader = {"X-MS-CLIENT-PRINCIPAL": encode_principal("reader@example.com", ["Reader"])}
    monkeypatch.setattr(cli_client, "api_client",
                        lambda: cli_client.ApiClient("http://pitcrew.test", headers=reader))
    yield served


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def shown(output: str) -> list[str]:
    """The item ids a table (or the alert list) shows, in order."""
    return re.findall(r"\b[gsnqxcd]\d\b", HINT.sub("", output))


# command, its route, the key of its list, the JSON id of an item, the id the table shows
COMMANDS = [
    (["alerts"], "/api/alerts", "groups", "id", "g"),
    (["silences"], "/api/silences", "silences", "id", "s"),
    (["notifications"], "/api/notifications", "notifications", "id", "n"),
    (["quota"], "/api/quota", "quotas", "quota", "q"),
    (["quota", "requests"], "/api/quota/requests", "requests", "quota", "x"),
    (["backups"], "/api/backups", "checks", "check", "c"),
    (["drills"], "/api/drills", "drills", "name", "d"),
]
IDS = [" ".join(c[0]) for c in COMMANDS]


@pytest.mark.parametrize(("command", "path", "key", "ident", "prefix"), COMMANDS, ids=IDS)
def test_a_page_that_is_not_the_last_hints_the_command_that_shows_the_next(
        app: App, command: list[str], path: str, key: str, ident: str, prefix: str) -> None:
    seen: list[str] = []
    result = run(*command, "--limit", "2")
    pages = 1
    while True:
        assert app.queries[-1][0] == path
        page = shown(result.output)
        assert len(page) == (2 if pages < 3 else 1), result.output
        seen += sorted(page)
        hints = HINT.findall(result.output)
        if not hints:
            break
        (token,) = hints
        result = run(*command, "--limit", "2", "--continuation", token)
        assert app.queries[-1][1] == {"limit": "2", "continuation": token}
        pages += 1
    assert pages == 3
    assert seen == [f"{prefix}{i}" for i in range(COUNT)]
    assert app.queries[0][1] == {"limit": "2"}


@pytest.mark.parametrize(("command", "path", "key", "ident", "prefix"), COMMANDS, ids=IDS)
def test_all_follows_every_page_and_prints_no_hint(
        app: App, command: list[str], path: str, key: str, ident: str, prefix: str) -> None:
    result = run(*command, "--all", "--limit", "2")
    assert sorted(shown(result.output)) == [f"{prefix}{i}" for i in range(COUNT)]
    assert not HINT.search(result.output)
    assert app.sent("limit") == ["2", "2", "2"]
    tokens = app.sent("continuation")
    assert tokens[0] is None and all(tokens[1:]) and len(set(tokens)) == 3


@pytest.mark.parametrize(("command", "path", "key", "ident", "prefix"), COMMANDS, ids=IDS)
def test_json_carries_the_continuation_and_nothing_else(
        app: App, command: list[str], path: str, key: str, ident: str, prefix: str) -> None:
    first = json.loads(run(*command, "--limit", "3", "--json").output)
    assert set(first) == {key, "continuation"}
    assert len(first[key]) == 3 and first["continuation"]
    rest = json.loads(run(*command, "--limit", "3", "--continuation", first["continuation"],
                          "--json").output)
    assert rest["continuation"] is None
    assert sorted(str(i[ident]).rsplit("/", 1)[-1] for i in first[key] + rest[key]) \
        == [f"{prefix}{i}" for i in range(COUNT)]
    every = json.loads(run(*command, "--all", "--json").output)
    assert len(every[key]) == COUNT and every["continuation"] is None


@pytest.mark.parametrize(("command", "path", "key", "ident", "prefix"), COMMANDS, ids=IDS)
def test_the_page_size_defaults_to_the_routes_and_to_its_maximum_with_all(
        app: App, command: list[str], path: str, key: str, ident: str, prefix: str) -> None:
    result = run(*command)
    assert app.queries == [(path, {"limit": "100"})]
    assert len(shown(result.output)) == COUNT and not HINT.search(result.output)
    run(*command, "--all")
    assert app.queries[-1] == (path, {"limit": "1000"})


@pytest.mark.parametrize(("args", "path", "query", "found"), [
    (["alerts", "--receiver", "r0"], "/api/alerts", {"receiver": "r0"}, ["g0", "g2", "g4"]),
    (["alerts", "--match", "team=b"], "/api/alerts", {"filter": "team=b"}, ["g1", "g3"]),
    (["silences", "--state", "expired"], "/api/silences", {"state": "expired"}, ["s1", "s3"]),
    (["notifications", "--status", "failed", "--receiver", "r1"], "/api/notifications",
     {"status": "failed", "receiver": "r1"}, ["n1", "n3"]),
    (["quota", "--location", "westus"], "/api/quota", {"location": "westus"}, ["q1", "q3"]),
    (["quota", "requests", "--status", "Succeeded"], "/api/quota/requests",
     {"status": "Succeeded"}, ["x1", "x3"]),
    (["backups", "--failing"], "/api/backups", {"failing": "true"}, ["c0", "c2", "c4"]),
    (["drills", "--status", "failed", "--failing", "--account", "a1"], "/api/drills",
     {"status": "failed", "failing": "true", "account": "a1"}, ["d1", "d3"]),
], ids=["alerts receiver", "alerts match", "silences state", "notifications status receiver",
        "quota location", "quota requests status", "backups failing", "drills filters"])
def test_filters_go_with_every_page(app: App, args: list[str], path: str,
                                    query: dict[str, str], found: list[str]) -> None:
    result = run(*args, "--limit", "1", "--all")
    assert sorted(shown(result.output)) == found
    assert all(p == path and q | query == q for p, q in app.queries), app.queries
    assert len(app.queries) >= len(found)


def test_quota_sorts_one_page_by_days_and_with_all_every_quota(app: App) -> None:
    # q4 runs out soonest (6 days), but it is on the last page of two.
    first = json.loads(run("quota", "--limit", "3", "--json").output)
    assert [q["quota"] for q in first["quotas"]] == ["q2", "q1", "q0"]
    every = json.loads(run("quota", "--limit", "3", "--all", "--json").output)
    assert [q["quota"] for q in every["quotas"]] == ["q4", "q3", "q2", "q1", "q0"]


def test_a_token_the_route_did_not_issue_is_its_400(app: App) -> None:
    result = CliRunner().invoke(cli.app, ["drills", "--continuation", "not-a-token"])
    assert isinstance(result.exception, cli_client.ApiError)
    assert "HTTP 400" in str(result.exception) and "continuation" in str(result.exception)
    assert app.queries == [("/api/drills", {"limit": "100", "continuation": "not-a-token"})]


def test_a_limit_beyond_the_routes_maximum_is_refused_before_any_request(app: App) -> None:
    result = CliRunner().invoke(cli.app, ["backups", "--limit", "1001"])
    assert result.exit_code == 2
    assert app.queries == []


@pytest.mark.parametrize(("status", "says"), [(404, "no route takes this path"),
                                               (502, "no detail (Bad Gateway)")])
def test_an_answer_without_a_body_still_says_what_went_wrong(
        status: int, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's own 404 (a name with '..' resolved away by the URL) has no body: the error
    must not end at 'HTTP 404: '."""
    from pitcrew.cli.client import ApiClient, ApiError

    monkeypatch.setattr(httpx, "request", lambda *a, **k: httpx.Response(status))
    with pytest.raises(ApiError) as failed:
        ApiClient(base_url="http://127.0.0.1:9").request("POST", "/api/drills/../orders/run")
    assert says in str(failed.value) and not str(failed.value).endswith(": "), str(failed.value)


def test_ctrl_c_says_the_work_goes_on_in_the_app(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Interrupting a command that waits (a rotation, a drill) must not look like nothing
    happened: the request already sent goes on in the app."""
    import sys

    from pitcrew.cli import client as cli_client
    from pitcrew.cli import main as cli_main

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_client.ApiClient, "request", interrupted)
    monkeypatch.setattr(sys, "argv", ["pitcrew", "rotations"])
    with pytest.raises(SystemExit) as stopped:
        cli_main.main()
    assert stopped.value.code == 130
    assert "goes on there" in capsys.readouterr().err
