"""The operator console in a real browser (headless Debian chromium) against the function app
on the local host: every view loads without a page error or CSP violation, a dead-letter
replay run from the page puts the messages back in the queue, a Reader sees the replay button
disabled with the reason (and the API refuses), API data is rendered as text, and the console
is readable on a phone and in dark mode. Screenshots go to tests/browser/screenshots/."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from pitcrew.auth import encode_principal
from pitcrew.deadletter.ingest import scan
from tests.browser.conftest import Console
from tests.integration.dlq_support import get_deadletter
from tests.integration.test_deadletter_storage import drain, poison

VIEWS = ("dlq", "rotations", "alerts", "notifications", "quota", "audit", "rejected")
HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">'


def _ingest(queue: str, bodies: list[str]) -> str:
    poison(queue, bodies)
    while scan(get_deadletter(), ["orders"])[0].received:
        pass
    (group,) = list(get_deadletter().store.groups())
    return group.id


def test_every_view_loads_and_is_screenshotted(sign_in: Any, console_host: tuple[str, str]
                                               ) -> None:
    group = _ingest(console_host[1], [json.dumps({"order": i}) for i in range(3)])
    console: Console = sign_in()
    page = console.page
    assert page.locator("#who-name").text_content() == "ops@example.com"
    for view in VIEWS:
        console.open(view)
        assert page.locator("main h1").count() == 1, view
        # A route this version lacks says so instead of breaking the page.
        body = page.locator("main").inner_text()
        assert "Not found" not in page.locator("main h1").inner_text(), view
        if page.locator("main .notice").count():
            assert "not available in this version" in body.lower(), view
        console.shot(view)
    console.open(f"dlq/g/{group}")
    assert page.locator("tbody tr").count() == 3
    console.shot("dlq-group")
    assert console.errors == []


def test_replay_from_the_page_puts_the_messages_back(sign_in: Any,
                                                     console_host: tuple[str, str]) -> None:
    queue = console_host[1]
    bodies = [json.dumps({"order": i, "note": "retry me"}) for i in range(5)]
    group = _ingest(queue, bodies)
    console: Console = sign_in()
    page = console.page
    console.open(f"dlq/g/{group}")
    page.fill("#replay-rate", "200")
    page.uncheck("#replay-dry")
    page.click("#replay-go")
    dialog = page.locator("dialog#confirm")
    assert "ops@example.com" in dialog.inner_text() and "Operator" in dialog.inner_text()
    page.click("#confirm-ok")
    page.wait_for_selector("#job-summary[data-status='succeeded']", timeout=30_000)
    assert "sent 5" in page.locator("#job-summary").inner_text()
    console.shot("dlq-replay")
    back = [json.loads(base64.b64decode(m)) for m in drain(queue)]
    assert sorted(b["order"] for b in back) == list(range(5))
    # Audited like the CLI: who asked, from the page.
    console.open("audit")
    page.fill("#audit-action", "dlq.replay.request")
    page.click("form[role='search'] button[type='submit']")
    page.wait_for_selector("td:has-text('user:ops@example.com')", timeout=10_000)
    assert console.errors == []


def test_a_reader_cannot_replay(sign_in: Any, console_host: tuple[str, str]) -> None:
    group = _ingest(console_host[1], [json.dumps({"order": 1})])
    console: Console = sign_in("reader@example.com", "Reader")
    page = console.page
    console.open(f"dlq/g/{group}")
    button = page.locator("#replay-go")
    assert button.is_disabled()
    reason = page.locator(f"#{button.get_attribute('aria-describedby')}").inner_text()
    assert reason == "needs Operator: reader@example.com holds Reader"
    console.shot("dlq-reader")
    # The API refuses too, whatever the page shows.
    status = page.evaluate("""async (group) => (await fetch('/api/dlq/replays', {
        method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({group})})).status""", group)
    assert status == 403
    assert console.errors == []


def test_api_data_is_text_and_the_policy_is_strict(sign_in: Any,
                                                   console_host: tuple[str, str]) -> None:
    base, queue = console_host
    group = _ingest(queue, [HOSTILE])
    console: Console = sign_in()
    page = console.page
    console.open(f"dlq/g/{group}")
    assert page.locator("code.preview").first.inner_text() == HOSTILE
    assert page.locator("main img").count() == 0
    page.locator("tbody a.mono").first.click()
    console.wait_ready()
    page.click("#body-go")
    page.wait_for_selector("#message-body:not(:empty)")
    assert page.locator("#message-body").inner_text() == HOSTILE
    assert page.evaluate("document.body.dataset.pwned") is None
    headers = page.goto(f"{base}/api/console/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert console.errors == []


def test_phone_width_and_dark_mode(sign_in: Any, console_host: tuple[str, str]) -> None:
    group = _ingest(console_host[1], [json.dumps({"order": 1, "sku": "a" * 300})])
    console: Console = sign_in(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = console.page
    console.open(f"dlq/g/{group}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    console.shot("dlq-group-phone-dark")
    # Keyboard: the skip link is the first stop, then the views, each reachable with Enter.
    page.reload()
    console.wait_ready()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#/rotations"
    page.evaluate("document.body.dataset.ready = 'false'")
    page.keyboard.press("Enter")
    console.wait_ready()
    assert page.locator("main h1").inner_text() == "Rotations"
    assert page.evaluate("document.activeElement.tagName") == "H1"
    assert console.errors == []


def test_the_console_needs_a_signed_in_reader(console_host: tuple[str, str]) -> None:
    base = console_host[0]
    anonymous = httpx.get(f"{base}/api/console/app.js")
    assert anonymous.status_code == 401 and "/.auth/login/aad" in anonymous.text
    nobody = {"X-MS-CLIENT-PRINCIPAL": encode_principal("x@example.com", [])}
    assert httpx.get(f"{base}/api/console/", headers=nobody).status_code == 403
    cross = {"X-MS-CLIENT-PRINCIPAL": encode_principal("x@example.com", ["Operator"]),
             "Sec-Fetch-Site": "cross-site"}
    assert httpx.post(f"{base}/api/dlq/scan", headers=cross, content=b"{}").status_code == 403
    redirect = httpx.get(f"{base}/console")
    assert redirect.status_code == 302
    assert redirect.headers["location"].startswith("/.auth/login/aad")


def _has_route(route: str, method: str) -> bool:
    import function_app

    app = function_app.app
    app.functions_bindings = None  # type: ignore[attr-defined]
    try:
        for fn in app.get_functions():
            trigger = fn.get_trigger().get_dict_repr()
            methods = [str(getattr(m, "value", m)).upper() for m in trigger.get("methods") or []]
            if trigger.get("route") == route and method in methods:
                return True
        return False
    finally:
        app.functions_bindings = None  # type: ignore[attr-defined]


def test_silences_create_and_expire_or_not_available(sign_in: Any) -> None:
    console: Console = sign_in()
    page = console.page
    console.open("alerts")
    if not _has_route("silences", "POST"):
        # This version has no silences route: the view says so, and nothing breaks.
        notice = page.locator("#silences-list .notice").inner_text()
        assert "not available in this version" in notice.lower()
        assert console.errors == []
        return
    # The shapes of docs/alerting.md: matchers on pitcrew's labels, a duration `for`.
    page.fill("#silence-matchers", "alertRule=ConsoleTest\nseverity=~\"critical|warning\"")
    page.fill("#silence-for", "1h")
    page.fill("#silence-comment", "browser test: maintenance")
    page.click("#silence-go")
    page.click("#confirm-ok")
    row = page.locator("#silences-list tr", has_text="browser test: maintenance")
    row.wait_for(timeout=10_000)
    assert 'alertRule="ConsoleTest"' in row.inner_text()
    assert "active" in row.inner_text()
    row.locator("button", has_text="Expire").click()
    page.click("#confirm-ok")
    from playwright.sync_api import expect

    live = page.locator("#silences-list tr", has_text="browser test: maintenance").filter(
        has=page.locator("button", has_text="Expire"))
    expect(live).to_have_count(0, timeout=10_000)
    # The expiry is visible: the row stays, marked expired by whoever expired it.
    expired = page.locator("#silences-list tr", has_text="browser test: maintenance")
    expect(expired).to_contain_text("expired by user:ops@example.com")
    console.shot("alerts-silenced")
    assert console.errors == []


def test_a_silence_from_an_alert_group_prefills_its_labels(sign_in: Any) -> None:
    from pitcrew.bootstrap import reset_services
    from pitcrew.intake.api import receive_alert
    from tests.integration.test_alerting import alert

    reset_services()
    result = receive_alert({}, alert("console-from-alert", rule="console-from-alert"))
    assert result.status == 200, result.body
    console: Console = sign_in()
    page = console.page
    console.open("alerts")
    group = page.locator("#alerts-list .alert-group", has_text="console-from-alert")
    group.wait_for(timeout=10_000)
    group.locator("button", has_text="Silence group").click()
    assert 'alertRule="console-from-alert"' in page.input_value("#silence-matchers")
    page.fill("#silence-comment", "browser test: from an alert")
    page.click("#silence-go")
    page.click("#confirm-ok")
    row = page.locator("#silences-list tr", has_text="browser test: from an alert")
    row.wait_for(timeout=10_000)
    assert 'alertRule="console-from-alert"' in row.inner_text()
    console.open("alerts")  # the alert now says which silence holds it back
    from playwright.sync_api import expect

    expect(page.locator("#alerts-list .alert-group", has_text="console-from-alert")
           ).to_contain_text("silenced by")
    console.shot("alerts-group")
    assert console.errors == []


def test_load_more_follows_the_continuation_with_the_same_filter(
    sign_in: Any, console_host: tuple[str, str]
) -> None:
    from pitcrew.audit import AuditRecord
    from pitcrew.bootstrap import get_services

    audit = get_services().audit
    for i in range(53):
        audit.append(AuditRecord(actor="app:pitcrew", action="test.paging", target=f"t-{i}",
                                 outcome="succeeded", correlation_id=f"c-{i}"))
    audit.append(AuditRecord(actor="app:pitcrew", action="test.other", target="other",
                             outcome="succeeded", correlation_id="c-other"))
    console: Console = sign_in()
    page = console.page
    rows = _audit_filtered(console, "test.paging")
    rows.nth(49).wait_for(timeout=10_000)
    assert rows.count() == 50
    page.click("button.more")
    rows.nth(52).wait_for(timeout=10_000)
    assert rows.count() == 53 and page.locator("button.more").count() == 0
    assert "test.other" not in page.locator("main").inner_text()
    assert console.errors == []


def _audit_filtered(console: Console, action: str) -> Any:
    """The audit view filtered by `action` (the unfiltered table gone): its rows' locator."""
    page = console.page
    console.open("audit")
    page.locator("main table").wait_for(timeout=10_000)
    page.evaluate("() => { document.querySelector('main table').dataset.unfiltered = '1'; }")
    page.fill("#audit-action", action)
    page.click("form[role='search'] button[type='submit']")
    page.locator("main table[data-unfiltered]").wait_for(state="detached", timeout=10_000)
    return page.locator("main table tbody tr")
