"""The operator console's behaviour around the edges, in a real browser: opened from a link on
another site; a view that answers after the operator moved on; "Load more" with a filter typed
but not submitted, clicked twice, or failing; a scan that ends on another view; a message replay
(a dry run first); a purge that empties its group; notification retries that fail or find the
notification busy; alert groups cut at 100 alerts; silences prefilled from labels; and API data
holding a bidi override (U+202E), which must not reorder the console's own words."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from pitcrew.auth import encode_principal
from tests.browser.conftest import Console
from tests.browser.test_console import _audit_filtered, _ingest

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: what follows it is drawn right to left


def _until(page: Any, done: Callable[[], bool], what: str) -> None:
    """Let the page run (and Playwright call our route handlers) until `done()`."""
    for _ in range(500):
        if done():
            return
        page.wait_for_timeout(20)
    raise AssertionError(f"never happened: {what}")


def _places(page: Any, selector: str, words: list[str]) -> list[tuple[int, float]]:
    """Where each piece of text under `selector` is drawn: (top, left) of its first occurrence
    in the element's text, in pixels (a piece may span elements)."""
    return [tuple(p) for p in page.evaluate("""([selector, words]) => {
        const root = document.querySelector(selector);
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        const nodes = [];
        for (let n = walker.nextNode(); n; n = walker.nextNode()) nodes.push(n);
        const text = nodes.map((n) => n.textContent).join('');
        const at = (offset, end) => {  // the text node and offset of a character of `text`
            for (const node of nodes) {
                const size = node.textContent.length;
                if (offset < size || (end && offset === size)) return [node, offset];
                offset -= size;
            }
            throw new Error(`offset past the end of ${selector}`);
        };
        return words.map((word) => {
            const start = text.indexOf(word);
            if (start < 0) throw new Error(`no "${word}" in ${selector}: ${text}`);
            const range = document.createRange();
            range.setStart(...at(start, false));
            range.setEnd(...at(start + word.length, true));
            const rect = range.getBoundingClientRect();
            return [Math.round(rect.top), rect.left];
        });
    }""", [selector, words])]


def _in_reading_order(page: Any, selector: str, words: list[str]) -> None:
    """The words are drawn in the order they are read: line by line, left to right."""
    places = _places(page, selector, words)
    assert places == sorted(places), (page.locator(selector).inner_text(),
                                      dict(zip(words, places, strict=True)))


@pytest.fixture
def other_site() -> Iterator[Callable[[str], str]]:
    """other_site(target) -> the URL of a page on another site (localhost, where the console is
    on 127.0.0.1) holding a link #go to `target`."""
    links: dict[str, str] = {}

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f'<a id="go" href="{links["target"]}">the pitcrew console</a>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def page_linking_to(target: str) -> str:
        links["target"] = target
        return f"http://localhost:{server.server_address[1]}/"

    yield page_linking_to
    server.shutdown()
    server.server_close()


def test_a_link_from_another_site_opens_the_console(browser: Any, console_host: tuple[str, str],
                                                    other_site: Callable[[str], str]) -> None:
    base = console_host[0]
    operator = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Operator"])}
    context = browser.new_context(extra_http_headers=operator)
    try:
        page = context.new_page()
        page.goto(other_site(f"{base}/api/console/"))
        with page.expect_navigation() as followed:
            page.click("#go")
        response = followed.value
        assert response.request.all_headers().get("sec-fetch-site") == "cross-site"
        assert response.status == 200, page.locator("body").inner_text()
        # ... and it works: its assets and the API answer the page's own (same-origin) requests.
        page.wait_for_selector("body[data-ready='true']", timeout=15_000)
        assert page.locator("#who-name").inner_text() == "ops@example.com"
    finally:
        context.close()
    # The sign-in's redirects, started on another site as Entra ID's callback is, end on the
    # console signed in (the session cookie is sent on a top-level navigation, as App Service's).
    signing_in = browser.new_context()
    try:
        page = signing_in.new_page()
        page.goto(other_site(f"{base}/.auth/login/aad?name=ops@example.com&roles=Reader"
                             "&post_login_redirect_uri=/api/console/"))
        page.click("#go")
        page.wait_for_selector("body[data-ready='true']", timeout=15_000)
        assert page.locator("#who-name").inner_text() == "ops@example.com"
    finally:
        signing_in.close()
    # Only the page itself, and only as a top-level navigation: not fetched, not framed; its
    # assets and the operator API refuse other sites whatever the request is.
    navigate = {**operator, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                "Sec-Fetch-Dest": "document"}
    assert httpx.get(f"{base}/api/console/", headers=navigate).status_code == 200
    for refused in ({**navigate, "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"},
                    {**navigate, "Sec-Fetch-Dest": "iframe"},
                    {**navigate, "Sec-Fetch-Mode": "no-cors"}):
        assert httpx.get(f"{base}/api/console/", headers=refused).status_code == 403, refused
    assert httpx.get(f"{base}/api/console/app.js", headers=navigate).status_code == 403
    assert httpx.get(f"{base}/api/me", headers=navigate).status_code == 403
    assert httpx.get(f"{base}/api/dlq/groups", headers=navigate).status_code == 403


def test_a_view_left_behind_never_writes_into_the_next(sign_in: Any,
                                                       console_host: tuple[str, str]) -> None:
    group = _ingest(console_host[1], [json.dumps({"order": 1})])
    console: Console = sign_in()
    page = console.page
    # The group answers only once the operator has moved on to Rotations.
    held: list[Any] = []
    page.route(re.compile(rf"/api/dlq/groups/{group}\?limit=1$"), lambda route: held.append(route))
    page.evaluate("(hash) => { location.hash = hash; }", f"#/dlq/g/{group}")
    _until(page, lambda: bool(held), "the group view asks for its group")
    console.open("rotations")
    page.fill("#rotate-vault", "sample-kv")
    with page.expect_request(re.compile(rf"/api/dlq/groups/{group}\?limit=50")):
        held[0].continue_()  # the group view goes on: it asks for the messages next
    assert page.locator("main h1").all_inner_texts() == ["Rotations"]
    assert page.locator("#purge-go, #filter-status").count() == 0
    assert page.input_value("#rotate-vault") == "sample-kv"

    # A scan started on Dead letters ends while the operator types on Rotations: it says so,
    # and leaves Rotations (and what was typed there) as it is.
    done = {"yet": False}
    page.route(re.compile(r"/api/dlq/scans/[^/?]+$"), lambda route: route.fulfill(json={
        "id": route.request.url.rsplit("/", 1)[1],
        "status": "succeeded" if done["yet"] else "running"}))
    console.open("dlq")
    page.click("text=Scan sources now")
    page.click("#confirm-ok")
    expect(page.locator(".inline-status")).to_contain_text("Scan ")
    console.open("rotations")
    page.fill("#rotate-vault", "sample-kv")
    page.fill("#rotate-reason", "half-typed reason")
    done["yet"] = True
    expect(page.locator("#status")).to_contain_text(re.compile(r"Scan \S+: succeeded\."),
                                                    timeout=10_000)
    assert page.input_value("#rotate-vault") == "sample-kv"
    assert page.input_value("#rotate-reason") == "half-typed reason"
    assert page.locator("main h1").all_inner_texts() == ["Rotations"]
    assert console.errors == []


def test_load_more_keeps_the_submitted_filter_asks_once_and_keeps_the_rows(
    sign_in: Any, console_host: tuple[str, str]
) -> None:
    from pitcrew.audit import AuditRecord
    from pitcrew.bootstrap import get_services

    audit = get_services().audit
    for action, count in (("test.paging", 53), ("test.other", 5)):
        for i in range(count):
            audit.append(AuditRecord(actor="app:pitcrew", action=action, target=f"{action}-{i}",
                                     outcome="succeeded", correlation_id=f"{action}-{i}"))
    console: Console = sign_in()
    page = console.page
    # The second page fails first (as a token from another query would), then is held until
    # the test lets it through.
    failing = {"now": True}
    held: list[Any] = []

    def later_page(route: Any) -> None:
        if failing["now"]:
            route.fulfill(status=400, json={
                "error": "invalid_input", "field": "continuation",
                "message": "continuation: was not made for this query"})
        else:
            held.append(route)

    page.route(re.compile(r"/api/audit\?.*continuation="), later_page)
    rows = _audit_filtered(console, "test.paging")
    expect(rows).to_have_count(50)
    more = page.locator("button.more")

    # A page that fails: the rows stay, the error is next to the button (the field said once).
    more.click()
    expect(page.locator(".pager-error")).to_have_text(
        "400: continuation: was not made for this query")
    expect(rows).to_have_count(50)
    expect(more).to_be_enabled()

    # A filter typed but not submitted, then a double click: one request, with the filter
    # that made the list.
    page.fill("#audit-action", "test.other")
    failing["now"] = False
    more.dblclick()
    _until(page, lambda: bool(held), "Load more asks for the next page")
    # Any second request was made before this one: it would be held by now.
    page.evaluate("() => fetch('/api/me').then((r) => r.status)")
    assert len(held) == 1, [r.request.url for r in held]
    assert "action=test.paging" in held[0].request.url
    expect(more).to_be_disabled()
    held[0].continue_()
    expect(more).to_have_count(0)  # that was the last page
    expect(rows).to_have_count(53)
    actions = page.locator("main table tbody tr td:nth-child(3)").all_inner_texts()
    targets = page.locator("main table tbody tr td:nth-child(4)").all_inner_texts()
    assert set(actions) == {"test.paging"} and len(set(targets)) == 53
    assert page.locator(".pager-error").count() == 0
    assert console.errors == []


def test_a_message_replays_as_a_dry_run_and_a_purged_group_is_left(
    sign_in: Any, console_host: tuple[str, str]
) -> None:
    group = _ingest(console_host[1], [json.dumps({"order": i}) for i in range(2)])
    console: Console = sign_in()
    page = console.page
    console.open(f"dlq/g/{group}")
    page.locator("tbody a.mono").first.click()
    console.wait_ready()
    # Replaying one message is the same form as a group's: a dry run unless unticked.
    assert page.is_checked("#replay-dry")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/dlq/replays")
                             ) as posted:
        page.click("#replay-one")
        assert "Plan a replay of message" in page.locator("#confirm-title").inner_text()
        page.click("#confirm-ok")
    asked = posted.value.post_data_json
    assert asked["dryRun"] is True and len(asked["messages"]) == 1, asked
    page.wait_for_selector("#job-summary[data-status='succeeded']", timeout=15_000)
    assert "(dry run)" in page.locator("#job-summary").inner_text()

    # Purging every message of a group removes the group: back to the list, no error.
    console.open(f"dlq/g/{group}")
    page.click("#purge-go")
    page.click("#confirm-ok")
    expect(page.locator("main h1")).to_have_text("Dead letters")
    console.wait_ready()
    expect(page.locator("#status")).to_contain_text("Purged 2 message(s)")
    assert "error" not in (page.get_attribute("#status", "class") or "")
    assert page.locator("main .error").count() == 0
    assert page.locator(f"main a[href='#/dlq/g/{group}']").count() == 0
    assert console.errors == []


def test_alert_groups_say_when_they_are_cut_and_silences_match_labels_as_they_are(
    sign_in: Any, pitcrew_env: Path, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitcrew.alerting import api as alerting_api
    from pitcrew.intake.api import receive_alert
    from tests.integration.test_alerting import alert, tree_policy, write

    monkeypatch.setattr(alerting_api, "MAX_ALERTS_PER_GROUP", 2)  # 100 in real life
    write(pitcrew_env, tree_policy(receiver, receiver))  # alerts grouped by alertRule
    sent = [alert(f"many-{i}", rule="console-many") for i in range(3)]
    sent += [alert("tilde", rule="~.*"), alert("bidi", rule=f"cpu{RLO}high", sev="Sev1")]
    for body in sent:
        assert receive_alert({}, body).status == 200
    console: Console = sign_in()
    page = console.page
    console.open("alerts")
    many = page.locator("#alerts-list .alert-group", has_text="console-many")
    many.wait_for(timeout=10_000)
    assert many.locator("tbody tr").count() == 2
    expect(many.locator(".cut")).to_contain_text("Showing 2 of 3 alerts")
    expect(many.locator(".cut")).to_contain_text("matcher")

    # A label value holding a bidi override does not reorder the labels after it.
    bidi = page.locator("#alerts-list .alert-group", has_text="high").first
    cell = bidi.locator("tbody tr td[data-label='Labels']").first
    cell.evaluate("(el) => { el.id = 'bidi-labels'; }")
    after = re.findall(r", [^=,]+=", cell.inner_text().split(f"cpu{RLO}high", 1)[1])[:2]
    (line, _), (next_line, _) = _places(page, "#bidi-labels", after)
    assert line == next_line, "the two labels after the override should share a line"
    _in_reading_order(page, "#bidi-labels", ["alertRule=", "cpu", *after])

    # A label value starting with ~ is matched as it is, not as a regular expression.
    tilde = page.locator("#alerts-list .alert-group", has_text="~.*")
    tilde.locator("button", has_text="Silence…").first.click()
    assert 'alertRule="~.*"' in page.input_value("#silence-matchers").splitlines()
    page.fill("#silence-comment", "browser test: literal tilde")
    page.click("#silence-go")
    page.click("#confirm-ok")
    row = page.locator("#silences-list tr", has_text="browser test: literal tilde")
    row.wait_for(timeout=10_000)
    assert 'alertRule="~.*"' in row.inner_text()
    console.open("alerts")
    expect(page.locator("#alerts-list .alert-group", has_text="~.*")).to_contain_text(
        "silenced by")
    assert "silenced by" not in page.locator("#alerts-list .alert-group",
                                             has_text="console-many").inner_text()
    assert console.errors == []


def test_a_retry_says_what_it_did_and_data_never_reorders_the_words_around_it(
    sign_in: Any, receiver: Any
) -> None:
    from pitcrew.bootstrap import reset_services
    from pitcrew.intake.api import receive_alert
    from tests.integration.test_alerting import alert

    reset_services()
    receiver.status = 500
    assert receive_alert({}, alert("bidi", rule=f"cpu{RLO}high")).status == 200
    console: Console = sign_in()
    page = console.page
    console.open("notifications")
    row = page.locator("#notifications-list tr", has_text="high").first
    row.wait_for(timeout=10_000)
    receiver_name = row.locator("td[data-label='Receiver']").inner_text()
    row.locator("button", has_text="Retry now").click()
    # In the confirmation the title holds the override; the receiver after it stays in place.
    title = ["Retry notification", "cpu", '" to ', f" {receiver_name}?"]
    assert len({top for top, _ in _places(page, "#confirm-title", title[2:])}) == 1
    _in_reading_order(page, "#confirm-title", title)
    _in_reading_order(page, "#confirm-body .who-line", ["Signed in as", "ops@example.com",
                                                        "needs the role"])
    page.click("#confirm-ok")

    # The receiver still answers 500: the retry failed, and the status line says so and why.
    status = page.locator("#status")
    expect(status).to_contain_text("failed")
    assert status.get_attribute("class") == "status error"
    last_error = page.locator("#notifications-list tr", has_text="high").first.locator(
        "td[data-label='Last error']").inner_text()
    assert last_error not in ("", "—") and last_error in status.inner_text()
    said = ["Retried", "cpu", '" to ', f" {receiver_name}: ", "failed"]
    assert len({top for top, _ in _places(page, "#status", said)}) == 1
    _in_reading_order(page, "#status", said)

    # Another attempt holding the notification: nothing was done, said neither ok nor error.
    page.route(re.compile(r"/api/notifications/[^/]+/retry$"),
               lambda route: route.fulfill(json={"result": "busy"}))
    page.locator("#notifications-list tr", has_text="high").first.locator(
        "button", has_text="Retry now").click()
    page.click("#confirm-ok")
    expect(status).to_contain_text("another attempt is under way")
    assert status.get_attribute("class") == "status info"
    assert console.errors == []


def test_a_rotation_says_whether_it_was_done(sign_in: Any) -> None:
    """Only a rotation done is green: a failed run says where and why, a run another request
    advances (202) is neither, and a bare run still shows."""
    console: Console = sign_in()
    page = console.page
    console.open("rotations")
    answers = [
        (200, {"dryRun": False, "run": {"id": "kv/s@v1", "status": "failed", "step": "test",
                                       "outcome": "the provider refused the new key"}}),
        (202, {"dryRun": False, "inProgress": True, "message": "another request holds step test",
               "run": {"id": "kv/s@v1", "status": "running", "step": "test"}}),
        (200, {"dryRun": False, "run": {"id": "kv/s@v1", "status": "succeeded", "step": "done",
                                       "outcome": "promoted"}}),
    ]
    said = [("status error", "failed at step test: the provider refused the new key"),
            ("status info", "in progress: another request holds step test"),
            ("status ok", "Rotation succeeded")]
    page.fill("#rotate-vault", "kv")
    page.fill("#rotate-secret", "s")
    page.uncheck("#rotate-dry")
    status = page.locator("#status")
    for (code, body), (kind, words) in zip(answers, said, strict=True):
        page.route(re.compile(r"/api/rotations$"), _answer(code, body))
        page.click("#rotate-go")
        page.click("#confirm-ok")
        expect(status).to_contain_text(words)
        assert status.get_attribute("class") == kind
        page.unroute(re.compile(r"/api/rotations$"))
    assert console.errors == []


def _answer(code: int, body: dict[str, Any]) -> Callable[[Any], None]:
    return lambda route: route.fulfill(status=code, json=body)
