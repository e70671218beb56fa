"""The CLI against whatever the server answers: text it shows as given (never Rich markup),
answers that are not pitcrew's (HTML, a JSON array, a token that comes back forever), ids that
stay inside their path segment, credentials only where they belong, and an exit code that says
when the work failed although the request succeeded.

The CLI's own client (`api_client()`, from the environment) talks, over an httpx MockTransport,
to a stand-in that answers each path with a canned body and records every request.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from pitcrew.cli import client as cli_client
from pitcrew.cli import main as cli
from tests.unit.test_cli_paging import answer_with

# Rich markup that is no valid markup ('[/]' closes nothing) and markup that is: both must be
# shown as they are. Short, so that no table column folds it at any width.
H = "[/][i]x[/i]"


@dataclass
class Server:
    """Stands in for the app: the canned answer of each path (a JSON body, an httpx.Response
    or a function of the request), `fallback` for any other path (None: a bare 404), and
    every request it got."""

    answers: dict[str, Any] = field(default_factory=dict)
    fallback: Any = None
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.get(self.path(request), self.fallback)
        if callable(answer):
            answer = answer(request)
        if answer is None:
            return httpx.Response(404)
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    @staticmethod
    def path(request: httpx.Request) -> str:
        """The path as sent, percent-encoding and all (httpx.URL.path decodes it)."""
        return request.url.raw_path.decode().partition("?")[0]

    def paths(self) -> list[str]:
        return [f"{r.method} {self.path(r)}" for r in self.requests]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Server]:
    monkeypatch.chdir(tmp_path)  # no `pitcrew dev` host state of this checkout is read
    for name in ("PITCREW_APP_ID_URI", "PITCREW_DEV_PRINCIPAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PITCREW_URL", "http://127.0.0.1:7071")
    monkeypatch.setenv("PITCREW_FUNCTION_KEY", "the-function-key")
    served = Server()
    answer_with(monkeypatch, served.handle)
    yield served


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.app, list(args))


# ------------------------------------------------------------------ text, never markup


def _page(key: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {key: list(items), "continuation": None}


FINDING = {"vault": H, "kind": H, "name": H, "class": H, "expires": H, "action": H,
           "problems": [H]}
SHOWN = [
    (["audit"], "/api/audit", _page("records", {k: H for k in (
        "time", "actor", "action", "target", "outcome", "correlationId")}), 0),
    (["silences"], "/api/silences", _page("silences", {
        "id": H, "state": H, "matchers": [H], "endsAt": H, "createdBy": H, "comment": H}), 0),
    (["notifications"], "/api/notifications", _page("notifications", {
        "id": H, "receiver": H, "status": H, "attempts": H, "title": H, "lastError": H}), 0),
    (["alerts"], "/api/alerts", _page("groups", {
        "groupKey": H, "receiver": H, "nextFlushAt": H, "alerts": [
            {"status": H, "title": H, "silencedBy": [H], "inhibitedBy": []}]}), 0),
    (["rotations"], "/api/rotations", _page("rotations", {k: H for k in (
        "vault", "secret", "version", "status", "step", "updatedAt", "outcome")}), 0),
    (["backups"], "/api/backups", _page("checks", {
        "check": H, "checkedAt": H, "resources": [{"resource": H, "ok": False,
                                                   "problems": [H]}]}), 0),
    (["drills"], "/api/drills", _page("drills", {
        "name": H, "status": H, "lastResult": H, "nextDue": H, "problems": [H]}), 0),
    (["expiry"], "/api/expiry", _page("objects", FINDING), 0),
    (["quota"], "/api/quota", _page("quotas", {
        "quota": H, "location": H, "usage": 1, "limit": 2, "percent": 50,
        "daysToExhaustion": None, "trendPerDay": None, "level": H,
        "openRequest": {"newLimit": H, "status": H}}), 0),
    (["quota", "requests"], "/api/quota/requests", _page("requests", {
        "created": H, "quota": H, "location": H, "currentLimit": 1, "newLimit": H,
        "status": H, "actor": H}), 0),
    (["quota", "request", "scope/q", "--limit", "5"], "/api/quota/requests", {
        "status": H, "quota": H, "currentLimit": 1, "newLimit": H, "detail": H}, 0),
    (["dlq", "groups"], "/api/dlq/groups", _page("groups", {k: H for k in (
        "id", "entity", "cause", "count", "firstSeen", "lastSeen")}), 0),
    (["dlq", "jobs"], "/api/dlq/replays", _page("jobs", {
        "id": H, "status": H, "selection": {"group": H}, "target": H, "rate": 1,
        "counts": {"sent": H}, "total": H, "actor": H}), 0),
    (["dlq", "show", "0123456789ab"], "/api/dlq/groups/0123456789ab", {
        "id": H, "entity": H, "count": H, "cause": H, "statuses": {H: H},
        "continuation": None, "messages": [{
            "id": H, "status": H, "properties": {"message_id": H}, "deliveryCount": H,
            "ingestedAt": H, "bodySize": H, "preview": H}]}, 0),
    (["dlq", "pause", "j1"], "/api/dlq/replays/j1/pause", {"status": H, "requested": H}, 0),
    (["dlq", "scan", "--no-wait"], "/api/dlq/scan", {"id": H, "sources": [H]}, 0),
    (["silences", "add", "--match", "a=b", "--for", "1h", "--comment", "c"], "/api/silences",
     {"id": H, "endsAt": H, "matchers": [H]}, 0),
    (["silences", "expire", "s1"], "/api/silences/s1", {"id": H}, 0),
    (["rotate", "kv/s", "--dry-run"], "/api/rotations", {
        "dryRun": True, "plan": {"version": H, "strategy": H, "steps": [H]}}, 0),
    (["rotate", "kv/s"], "/api/rotations", {"dryRun": False, "run": {
        "id": H, "status": H, "step": H, "outcome": H, "newVersion": H}}, 0),
    (["rotate", "kv/s"], "/api/rotations", {"dryRun": False, "inProgress": True, "message": H,
                                            "run": {"id": H, "step": H}}, 0),
    (["drill", "run", "d1"], "/api/drills/d1/run", {
        "run": H, "status": H, "step": H, "message": H, "problems": [H]}, 0),
    (["drill", "run", "d1", "--dry-run"], "/api/drills/d1/run", {
        "mode": H, "restoreAt": H, "supportCase": H, "problems": []}, 0),
    (["images", "purge"], "/api/images/purge", {"registries": [{
        "registry": H, "dryRun": False, "count": 1, "bytes": 1, "kept": H,
        "images": [{"repository": H, "digest": H, "tags": [H], "bytes": 1}],
        "problems": []}]}, 0),
    (["expiry", "sweep"], "/api/expiry/sweep", {"sweep": H, "plan": False, "vaults": [{
        "vault": H, "counts": {H: 1}, "errors": [], "attention": [FINDING],
        "attentionCount": 1}]}, 0),
    (["notifications", "retry", "n1"], "/api/notifications/n1/retry",
     {"result": "delivered", "title": H}, 0),
]


@pytest.mark.parametrize(("args", "path", "answer", "code"), SHOWN,
                         ids=[" ".join(s[0][:3]) for s in SHOWN])
def test_what_the_app_answers_is_shown_as_text_not_markup(
        server: Server, args: list[str], path: str, answer: dict[str, Any], code: int) -> None:
    server.answers[path] = answer
    for _ in range(2):  # and again: the first answer shown changes nothing for the second
        result = invoke(*args)
        assert result.exit_code == code, (result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            repr(result.exception)
        # The markup that is valid came out as it was sent, brackets and all.
        assert "[i]x[/i]" in result.stdout + result.stderr, result.output


def test_a_problem_with_markup_in_it_is_one_line_as_sent(server: Server) -> None:
    server.answers["/api/images/purge"] = {"registries": [{
        "registry": "r", "dryRun": True, "count": 0, "bytes": 0, "kept": 0, "images": [],
        "problems": ["cannot read [red]r[/red]: [/] [link=https://evil.example]here[/link]"]}]}
    result = invoke("images", "purge", "--dry-run")
    assert result.exit_code == 1, result.output
    assert "✗ cannot read [red]r[/red]: [/] [link=https://evil.example]here[/link]" \
        in result.stderr


# ------------------------------------------------------------------ answers that are not ours


@pytest.mark.parametrize("args", [["audit"], ["rotations"], ["silences"], ["quota"],
                                  ["dlq", "groups"], ["expiry"], ["rotate", "kv/s"],
                                  ["silences", "add", "--match", "a=b", "--for", "1h",
                                   "--comment", "c"]], ids=" ".join)
def test_an_html_page_is_one_line_naming_what_came(
        server: Server, args: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    page = httpx.Response(200, html="<html><body>Sign in to continue</body></html>")
    server.answers.update({p: page for p in (
        "/api/audit", "/api/rotations", "/api/silences", "/api/quota", "/api/dlq/groups",
        "/api/expiry")})
    monkeypatch.setattr(sys, "argv", ["pitcrew", *args])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("✗ ") and "Traceback" not in line
    assert "answered 200 with text/html, not a JSON object (is PITCREW_URL the app?)" in line


@pytest.mark.parametrize(("answer", "says"), [
    (httpx.Response(200, json=["a", "b"]), "with a JSON array"),
    (httpx.Response(200, content=b"null", headers={"content-type": "application/json"}),
     "with a bare JSON value"),
    (httpx.Response(200, content=b"{not json", headers={"content-type": "application/json"}),
     "with a body that is not JSON"),
    (httpx.Response(200, content=b'{"rotations": []}'), "with no content type"),
    (httpx.Response(204), "with no content type"),
])
def test_a_success_that_is_no_json_object_is_an_api_error(
        server: Server, answer: httpx.Response, says: str) -> None:
    server.answers["/api/rotations"] = answer
    result = invoke("rotations")
    assert isinstance(result.exception, cli_client.ApiError), result.output
    assert says in str(result.exception) and "\n" not in str(result.exception)


@pytest.mark.parametrize("args", [["rotations", "--all"], ["audit", "--all"],
                                  ["silences", "--all"], ["dlq", "groups", "--all"],
                                  ["rotations", "--all", "--continuation", "same-token"]],
                         ids=" ".join)
def test_all_stops_when_a_continuation_comes_back(server: Server, args: list[str]) -> None:
    def same_token(key: str) -> Any:
        # The same token, and after 20 pages none: a client that never stops still ends here.
        return lambda request: {key: [], "continuation": "same-token"
                                if len(server.requests) <= 20 else None}

    for path, key in (("/api/rotations", "rotations"), ("/api/audit", "records"),
                      ("/api/silences", "silences"), ("/api/dlq/groups", "groups")):
        server.answers[path] = same_token(key)
    result = invoke(*args)
    assert isinstance(result.exception, cli_client.ApiError), result.output
    assert "continuation token it had given before" in str(result.exception)
    assert len(server.requests) <= 2


def test_all_still_follows_distinct_tokens_to_the_end(server: Server) -> None:
    tokens = iter(["t1", "t2", None])
    server.answers["/api/rotations"] = lambda request: {"rotations": [],
                                                        "continuation": next(tokens)}
    result = invoke("rotations", "--all", "--json")
    assert result.exit_code == 0, result.output
    assert [r.url.params.get("continuation") for r in server.requests] == [None, "t1", "t2"]


# ------------------------------------------------------------------ ids stay in their segment


SEGMENTS = [
    (["dlq", "pause", "20260101000000-deadbeef/cancel?"],
     ["POST /api/dlq/replays/20260101000000-deadbeef%2Fcancel%3F/pause"]),
    (["dlq", "resume", "j#1"], ["POST /api/dlq/replays/j%231/resume"]),
    (["dlq", "cancel", ".."], ["POST /api/dlq/replays/%2E%2E/cancel"]),
    (["dlq", "job", "20260101000000-deadbeef/../../groups?"],
     ["GET /api/dlq/replays/20260101000000-deadbeef%2F..%2F..%2Fgroups%3F"]),
    (["dlq", "job", "."], ["GET /api/dlq/replays/%2E"]),
    (["dlq", "scan-status", "s/../x"], ["GET /api/dlq/scans/s%2F..%2Fx"]),
    (["dlq", "show", "m/../../replays?"], ["GET /api/dlq/messages/m%2F..%2F..%2Freplays%3F"]),
    (["dlq", "edit", "m/../../replays?", "--text", "x"],
     ["POST /api/dlq/messages/m%2F..%2F..%2Freplays%3F/edit"]),
    (["dlq", "edit", "m%2F", "--set", "a=1"],
     ["GET /api/dlq/messages/m%252F", "POST /api/dlq/messages/m%252F/edit"]),
    (["silences", "expire", "../notifications"], ["DELETE /api/silences/..%2Fnotifications"]),
    (["notifications", "retry", "a/b"], ["POST /api/notifications/a%2Fb/retry"]),
    (["drill", "run", ".."], ["POST /api/drills/%2E%2E/run"]),
]


@pytest.mark.parametrize(("args", "sent"), SEGMENTS, ids=[" ".join(a) for a, _ in SEGMENTS])
def test_an_id_never_leaves_its_path_segment(server: Server, args: list[str],
                                             sent: list[str]) -> None:
    # One answer that every one of these commands can show.
    server.fallback = {"id": "x", "status": "paused", "applicationProperties": {},
                       "result": "delivered", "title": "t"}
    for _ in range(2):
        server.requests.clear()
        result = invoke(*args)
        assert result.exit_code == 0, (result.output, result.exception)
        assert server.paths() == sent


# ------------------------------------------------------------------ credentials


@pytest.mark.parametrize("url", ["http://192.0.2.2:7071", "http://pitcrew.example.com",
                                 "http://127.0.0.1.example.com", "ftp://127.0.0.1",
                                 "pitcrew.example.com", "http://[::1", "https://"])
def test_no_credential_goes_over_plain_http_to_another_machine(
        server: Server, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []

    class Credential:
        def get_token(self, scope: str) -> Any:
            fetched.append(scope)
            raise AssertionError("no token may be fetched for a cleartext URL")

    import azure.identity

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", Credential)
    monkeypatch.setenv("PITCREW_URL", url)
    monkeypatch.setenv("PITCREW_APP_ID_URI", "api://pitcrew")
    monkeypatch.setenv("PITCREW_DEV_PRINCIPAL", "alice@contoso.com:Operator")
    result = invoke("rotations")
    assert isinstance(result.exception, cli_client.ApiError), result.output
    assert str(result.exception).startswith("PITCREW_URL is ")
    assert "it must be https://, or http:// to this machine" in str(result.exception)
    assert server.requests == [] and fetched == []


@pytest.mark.parametrize("url", ["https://pitcrew.example.com", "http://127.0.0.1:7071",
                                 "http://127.0.0.2:7071", "http://localhost:7071",
                                 "http://[::1]:7071"])
def test_https_and_loopback_http_are_used(server: Server, url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITCREW_URL", url)
    server.answers["/api/rotations"] = {"rotations": [], "continuation": None}
    result = invoke("rotations")
    assert result.exit_code == 0, (result.output, result.exception)
    assert [str(r.url).startswith(url) for r in server.requests] == [True]


def test_the_local_hosts_url_is_checked_too(server: Server, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.delenv("PITCREW_URL")
    state = Path(".pitcrew")
    state.mkdir()
    (state / "dev-host.json").write_text(json.dumps({"url": "http://10.0.0.5:7071", "key": "k"}))
    result = invoke("rotations")
    assert isinstance(result.exception, cli_client.ApiError)
    assert str(result.exception).startswith("the local host's URL is http://10.0.0.5: ")
    assert server.requests == []
    (state / "dev-host.json").write_text(json.dumps({"url": "http://127.0.0.1:7071"}))
    server.answers["/api/rotations"] = {"rotations": [], "continuation": None}
    assert invoke("rotations").exit_code == 0


def test_the_function_key_goes_only_to_the_routes_that_take_it(server: Server) -> None:
    server.answers["/api/rotations"] = {"rotations": [], "continuation": None}
    server.answers["/api/alerts"] = {"groups": [], "continuation": None}
    assert invoke("rotations").exit_code == 0
    assert invoke("alerts").exit_code == 0  # GET /api/alerts is an operator route
    client = cli_client.api_client()
    client.post("/api/alerts", json={})  # the webhook an action group calls
    keys = [(r.method, r.url.path, r.headers.get("x-functions-key")) for r in server.requests]
    assert keys == [("GET", "/api/rotations", None), ("GET", "/api/alerts", None),
                    ("POST", "/api/alerts", "the-function-key")]


# ------------------------------------------------------------------ the work failed: exit 1


OUTCOMES = [
    (["notifications", "retry", "n1"], "/api/notifications/n1/retry",
     {"result": "failed", "title": "t"}, 1),
    (["notifications", "retry", "n1"], "/api/notifications/n1/retry",
     {"result": "busy", "title": "t"}, 1),
    (["notifications", "retry", "n1"], "/api/notifications/n1/retry",
     {"result": "already", "title": "t"}, 0),
    (["expiry", "sweep"], "/api/expiry/sweep", {"sweep": "s", "plan": False, "vaults": [
        {"vault": "kv-one", "counts": {"ok": 1}, "errors": []},
        {"vault": "kv-gone", "counts": {}, "errors": ["secrets: vault unreachable"]}]}, 1),
    (["expiry", "sweep"], "/api/expiry/sweep", {"sweep": "s", "plan": False, "vaults": [
        {"vault": "kv-one", "counts": {"ok": 1}, "errors": []}]}, 0),
    (["drill", "run", "d1"], "/api/drills/d1/run",
     {"run": "r", "status": "failed", "step": "verify", "problems": ["restore failed"]}, 1),
    (["drill", "run", "d1"], "/api/drills/d1/run",
     {"run": "r", "status": "succeeded", "step": "done", "problems": []}, 0),
    (["drill", "run", "d1", "--dry-run"], "/api/drills/d1/run",
     {"mode": "unknown", "problems": ["reading the account failed"]}, 1),
    (["images", "purge"], "/api/images/purge", {"registries": [
        {"registry": "r", "dryRun": False, "count": 0, "bytes": 0, "kept": 0, "images": [],
         "problems": ["cannot reach r"]}]}, 1),
    (["images", "purge"], "/api/images/purge", {"registries": [
        {"registry": "r", "dryRun": False, "count": 0, "bytes": 0, "kept": 0, "images": [],
         "problems": []}]}, 0),
    (["rotate", "kv/s"], "/api/rotations",
     {"run": {"id": "kv/s@v", "status": "failed", "step": "test", "outcome": "no"}}, 1),
    (["rotate", "kv/s"], "/api/rotations",
     {"run": {"id": "kv/s@v", "status": "succeeded", "step": "done", "outcome": "ok"}}, 0),
]


@pytest.mark.parametrize(("args", "path", "answer", "code"), OUTCOMES,
                         ids=[f"{' '.join(a)} -> {c}" for a, _, _, c in OUTCOMES])
def test_the_exit_code_says_whether_the_work_was_done(
        server: Server, args: list[str], path: str, answer: dict[str, Any], code: int) -> None:
    server.answers[path] = answer
    for extra in ([], ["--json"]):  # a script reading --json sees it as well
        result = invoke(*args, *extra)
        assert result.exit_code == code, (extra, result.output, result.exception)
        if extra:
            assert json.loads(result.stdout) == answer
