"""The dead-letter operator surface on Azurite: paged and filtered listings (groups, a group's
messages, replay jobs), decoded bodies and previews, scans as jobs (202, then progress), purge
now (dry run, Operator, audited, bodies and rows gone), absolute links in notifications, and
hostile input answered with a 400 naming the parameter."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from pitcrew.deadletter import api
from pitcrew.deadletter.ingest import scan
from pitcrew.deadletter.model import NotFound
from pitcrew.http.paging import encode_token
from tests.integration.dlq_support import get_deadletter
from tests.integration.test_deadletter_storage import (
    OPERATOR,
    READER,
    audit,
    poison,
    queue,
    write_policy,
)
from tests.receiver import Receiver


@pytest.fixture
def orders(pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    write_policy(pitcrew_env, (
        "deadletter:\n"
        "  scan_max_messages: 10\n"
        "  sources:\n"
        f"    - name: orders\n      type: storage-queue\n      queue: {unique_name}\n"
    ))
    return unique_name


def _order(i: int, **extra: Any) -> str:
    return json.dumps({"order": i, "sku": f"A-{i}", **extra})


def _ingest(q: str, bodies: list[str]) -> str:
    poison(q, bodies)
    while scan(get_deadletter(), ["orders"])[0].received:
        pass
    (group,) = list(get_deadletter().store.groups())
    return group.id


def _walk(fetch: Any, key: str, query: dict[str, str]) -> tuple[list[Any], int]:
    items: list[Any] = []
    pages = 0
    token = None
    while True:
        result = fetch(query | ({"continuation": token} if token else {}))
        assert result.status == 200, result.body
        assert set(result.body) >= {key, "continuation"}
        items += result.body[key]
        pages += 1
        token = result.body["continuation"]
        if token is None:
            return items, pages


# ------------------------------------------------------------------ 9.3 / 10.14: paging, filters


def test_group_messages_filter_by_status_and_page(orders: str) -> None:
    group = _ingest(orders, [_order(i) for i in range(12)])
    ids = sorted(m.id for m in get_deadletter().store.in_group(group))
    archived = api.archive(OPERATOR, json.dumps({"messages": ids[:9]}).encode())
    assert archived.body == {"archived": 9, "skipped": 0}

    def fetch(query: dict[str, str]) -> Any:
        return api.show_group(READER, group, query)

    failed, pages = _walk(fetch, "messages", {"status": "failed", "limit": "2"})
    assert sorted(m["id"] for m in failed) == ids[9:] and pages == 2
    assert {m["status"] for m in failed} == {"failed"}
    everything, pages = _walk(fetch, "messages", {"limit": "5"})
    assert sorted(m["id"] for m in everything) == ids and pages >= 3
    first = fetch({"limit": "5"}).body
    assert first["statuses"] == {"archived": 9, "failed": 3} and first["count"] == 12


def test_text_time_and_preview_filters(orders: str) -> None:
    bodies = [_order(i) for i in range(8)] + [_order(8, note="the NEEDLE is here")]
    group = _ingest(orders, bodies)

    def fetch(query: dict[str, str]) -> Any:
        return api.show_group(READER, group, query)

    # The stored text is base64: found only because the search reads the decoded body.
    found, _ = _walk(fetch, "messages", {"text": "needle", "limit": "3"})
    assert len(found) == 1 and "NEEDLE" in found[0]["preview"]
    by_cause, _ = _walk(fetch, "messages", {"text": "maxdequeuecount"})
    assert len(by_cause) == 9
    # A listing shows what each message says, decoded, on one bounded line.
    previews = {m["preview"] for m in fetch({}).body["messages"]}
    assert json.dumps({"order": 3, "sku": "A-3"}) in previews
    assert all(len(p) <= 120 for p in previews)
    assert fetch({"since": "2999-01-01T00:00:00Z"}).body["messages"] == []
    assert len(fetch({"since": "2000-01-01T00:00:00Z"}).body["messages"]) == 9


def test_groups_and_replay_jobs_are_paged(orders: str) -> None:
    from pitcrew.deadletter.model import FailedMessage, utcnow

    dl = get_deadletter()
    for n in range(3):
        sample = FailedMessage(id=f"{n:012x}-{'0' * 20}", group=f"{n:012x}", source="orders",
                               source_kind="storage-queue", entity=f"queue:e{n}",
                               source_key=f"k{n}", reason="R", description="", cause="R")
        dl.store.record_arrivals(sample, 1, utcnow(), [10])

    def groups(query: dict[str, str]) -> Any:
        return api.list_groups(READER, query)

    listed, pages = _walk(groups, "groups", {"limit": "2"})
    assert sorted(g["id"] for g in listed) == [f"{n:012x}" for n in range(3)] and pages == 2
    # Filtered by source (a name the policy knows) and by entity, exactly, and still paged.
    by_source, _ = _walk(groups, "groups", {"limit": "1", "source": "orders"})
    assert sorted(g["id"] for g in by_source) == [f"{n:012x}" for n in range(3)]
    assert [g["id"] for g in groups({"entity": "queue:e1"}).body["groups"]] == ["000000000001"]
    assert groups({"entity": "queue:E1"}).body["groups"] == []
    unknown = groups({"source": "elsewhere"})
    assert unknown.status == 400 and unknown.body["field"] == "source"
    assert "orders" in unknown.body["message"]  # the sources there are
    for bad in ("x" * 301, "a\x00b", "\u202e"):
        refused = groups({"entity": bad})
        assert refused.status == 400 and refused.body["field"] == "entity", bad
    for _ in range(3):
        accepted = api.request_replay(OPERATOR, json.dumps(
            {"group": "000000000001", "dryRun": True}).encode())
        assert accepted.status == 202, accepted.body

    def replays(query: dict[str, str]) -> Any:
        return api.list_replays(READER, query)

    jobs, pages = _walk(replays, "jobs", {"limit": "2"})
    assert len(jobs) == 3 and len({j["id"] for j in jobs}) == 3 and pages == 2
    assert replays({"since": "2001-01-01", "until": "2001-02-01"}).body["jobs"] == []


# ------------------------------------------------------------------ 10.15: bodies


def test_body_is_shown_decoded(orders: str) -> None:
    text = _order(1, note="hello")
    group = _ingest(orders, [text])
    (message,) = get_deadletter().store.in_group(group)
    assert get_deadletter().store.body(message.id) == base64.b64encode(text.encode())  # as kept
    body = api.show_message(READER, message.id, {"body": "true"}).body["body"]
    assert body["format"] == "json" and body["json"] == json.loads(text)
    assert body["text"] == text and body["encoding"] == "base64"
    assert "body" not in api.show_message(READER, message.id, {"body": "no"}).body
    unclear = api.show_message(READER, message.id, {"body": "perhaps"})
    assert unclear.status == 400 and "body" in json.dumps(unclear.body)


def test_preview_escapes_control_characters(orders: str) -> None:
    group = _ingest(orders, ["\x1b[31mred\u202e" + "x" * 500])
    (message,) = api.show_group(READER, group, {}).body["messages"]
    preview = message["preview"]
    assert "\x1b" not in preview and "\u202e" not in preview
    assert preview.startswith("\\x1b[31mred\\u202e") and len(preview) <= 120


# ------------------------------------------------------------------ 10.12: scans are jobs


def test_scan_answers_202_and_the_job_reports_progress(orders: str) -> None:
    poison(orders, [_order(i) for i in range(25)])
    accepted = api.scan_now(OPERATOR, b"{}")
    assert accepted.status == 202, accepted.body
    job = accepted.body["id"]
    assert accepted.headers["Location"] == f"/api/dlq/scans/{job}"  # no public base URL set
    assert api.show_scan(READER, job).body["status"] == "queued"
    assert get_deadletter().store.groups_page(limit=10).items == []  # nothing ingested yet
    # The queue the run_scan_job trigger listens on carries the job. Its name is fixed, so
    # tests running beside this one (pytest-xdist) may have put theirs there too: peeked, not
    # taken, so theirs stay visible (a worker finds this job done and drops its message).
    woken = [m for m in queue("pitcrew-scan-jobs").peek_messages(max_messages=32)
             if base64.b64decode(m.content).decode() == job]
    assert len(woken) == 1
    assert api.run_scan_job(job) == "done"
    view = api.show_scan(READER, job).body
    # scan_max_messages is 10: the job went on until the queue was drained.
    assert view["status"] == "succeeded" and view["received"] == 25 and view["stored"] == 25
    assert view["total"] == 25 and view["pending"] == []
    assert next(get_deadletter().store.groups()).count == 25
    (done,) = audit("dlq.scan")
    assert done["actor"] == "user:ops@example.com" and done["details"]["received"] == 25
    assert api.scan_now(READER, b"{}").status == 403
    unknown = api.scan_now(OPERATOR, b'{"sources": ["nope"]}')
    assert unknown.status == 400 and unknown.body["field"] == "sources"


@pytest.mark.parametrize("body", [b'{"sources": []}', b'{"sources": null}', b"{}", b""],
                         ids=["empty list", "null", "no sources", "no body"])
def test_a_scan_of_no_source_is_a_400_and_queues_nothing(
        pitcrew_env: Path, monkeypatch: pytest.MonkeyPatch, unique_name: str,
        body: bytes) -> None:
    """A policy without dead-letter sources has nothing to scan; a request naming an empty
    list of sources names none. Either is a 400 on `sources`, never a job that does nothing."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    for _ in range(2):
        answer = api.scan_now(OPERATOR, body)
        assert answer.status == 400, answer.body
        assert answer.body["field"] == "sources", answer.body
        assert "deadletter.sources" in answer.body["message"]
    write_policy(pitcrew_env, (
        "deadletter:\n  sources:\n"
        f"    - name: orders\n      type: storage-queue\n      queue: {unique_name}\n"))
    named_none = api.scan_now(OPERATOR, b'{"sources": []}')
    assert named_none.status == 400 and named_none.body["field"] == "sources"
    assert "name at least one" in named_none.body["message"]
    assert audit("dlq.scan.request") == []


def test_scan_job_hands_back_after_its_budget_and_resumes(orders: str) -> None:
    from pitcrew.deadletter.scans import ScanWorker, request_scan

    poison(orders, [_order(i) for i in range(25)])
    dl = get_deadletter()
    job = request_scan(dl, ["orders"], "user:ops@example.com").run_id
    ticks = iter(range(0, 10_000, 100))
    assert ScanWorker(dl, job, budget=150, clock=lambda: float(next(ticks))).run() == "continue"
    partial = api.show_scan(READER, job).body
    assert partial["status"] == "running" and 0 < partial["received"] < 25
    assert ScanWorker(dl, job).run() == "done"
    assert api.show_scan(READER, job).body["received"] == 25


# ------------------------------------------------------------------ ids of nothing: 404

MESSAGE = "0123456789ab-0123456789abcdef0123"  # well-formed, never ingested
JOB = "20260101000000-deadbeef"


@pytest.mark.parametrize(("call", "field"), [
    (lambda: api.show_message(READER, MESSAGE, {}), "message"),
    (lambda: api.show_message(READER, MESSAGE, {"body": "true"}), "message"),
    (lambda: api.show_group(READER, "0123456789ab", {}), "group"),
    (lambda: api.show_scan(READER, JOB), "scan"),
    (lambda: api.show_replay(READER, JOB), "job"),
    (lambda: api.control_replay(OPERATOR, JOB, "pause"), "job"),
    (lambda: api.control_replay(OPERATOR, JOB, "resume"), "job"),
    (lambda: api.control_replay(OPERATOR, JOB, "cancel"), "job"),
], ids=["message", "message body", "group", "scan", "replay", "pause", "resume",
        "cancel"])
def test_a_well_formed_id_of_nothing_is_a_404_naming_it(orders: str, call: Any,
                                                         field: str) -> None:
    for _ in range(2):
        answer = call()
        assert answer.status == 404, answer.body
        assert answer.body["error"] == "not_found" and answer.body["field"] == field
        assert "was not found" in answer.body["message"]


def test_a_body_naming_nothing_is_still_a_400_naming_its_field(orders: str) -> None:
    """What a request's path names is the resource (404 when it is not there); a group or
    message its body names that does not exist is a bad request, as before."""
    for call, field in (
        (lambda: api.request_replay(OPERATOR, b'{"group": "0123456789ab"}'), "group"),
        (lambda: api.request_replay(OPERATOR, f'{{"messages": ["{MESSAGE}"]}}'.encode()),
         "message"),
        (lambda: api.archive(OPERATOR, b'{"group": "0123456789ab"}'), "group"),
        (lambda: api.archive(OPERATOR, f'{{"messages": ["{MESSAGE}"]}}'.encode()), "message"),
        (lambda: api.purge(OPERATOR, b'{"group": "0123456789ab", "dryRun": true}'), "group"),
    ):
        answer = call()
        assert answer.status == 400 and answer.body["field"] == field, answer.body
    assert api.list_replays(READER, {}).body["jobs"] == []


# ------------------------------------------------------------------ 10.19: purge now


def test_purge_group_dry_run_then_for_good(orders: str) -> None:
    group = _ingest(orders, [_order(i) for i in range(5)])
    store = get_deadletter().store
    ids = sorted(m.id for m in store.in_group(group))
    plan = api.purge(OPERATOR, json.dumps({"group": group, "dryRun": True}).encode())
    assert plan.status == 200, plan.body
    assert plan.body["count"] == 5 and sorted(m["id"] for m in plan.body["messages"]) == ids
    assert len(list(store.in_group(group))) == 5  # a dry run deletes nothing
    assert api.purge(READER, json.dumps({"group": group}).encode()).status == 403
    done = api.purge(OPERATOR, json.dumps({"group": group}).encode())
    assert done.status == 200 and done.body["purged"] == 5 and done.body["more"] is False
    assert list(store.in_group(group)) == []
    for ident in ids:
        with pytest.raises(NotFound):
            store.body(ident)
    with pytest.raises(NotFound):
        store.group(group)
    (record,) = [r for r in audit("dlq.purge.now") if r["outcome"] == "succeeded"]
    assert record["actor"] == "user:ops@example.com" and record["details"]["purged"] == 5


def test_purge_before_a_time_keeps_messages_a_replay_holds(orders: str) -> None:
    group = _ingest(orders, [_order(i) for i in range(4)])
    store = get_deadletter().store
    held = next(store.in_group(group))
    store.update(held.copy(status="replaying", replay_job="20260101000000-deadbeef"))
    done = api.purge(OPERATOR, b'{"before": "2999-01-01T00:00:00Z"}')
    assert done.body["purged"] == 3 and done.body["skipped"] == 1
    assert [m.id for m in store.in_group(group)] == [held.id]
    assert store.group(group).count == 4  # the group stays while a message is held


@pytest.mark.parametrize("body", [
    b'{"group": "zz"}', b"{}", b'{"group": "000000000000", "before": "2026-01-01"}',
    b'{"before": "0001-01-01T00:00:00"}', b'{"before": "yesterday"}', b'{"grup": "x"}',
    b"[1]",
])
def test_purge_refuses_bad_requests(orders: str, body: bytes) -> None:
    answer = api.purge(OPERATOR, body)
    assert answer.status == 400, answer.body


# ------------------------------------------------------------------ 10.20: links


def test_notification_links_are_absolute(orders: str, receiver: Receiver,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITCREW_PUBLIC_BASE_URL", "https://pitcrew.example.net/")
    group = _ingest(orders, [_order(1)])
    (note,) = receiver.received
    urls = [a["url"] for a in note["actions"] if a.get("url")]
    assert urls == [f"https://pitcrew.example.net/api/dlq/groups/{group}"]


def test_created_jobs_are_located_by_absolute_https_links(
        orders: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Location of a scan or replay job is built from the public base URL, never from the
    request's Host header."""
    monkeypatch.setenv("PITCREW_PUBLIC_BASE_URL", "https://pitcrew.example.net/")
    group = _ingest(orders, [_order(1)])
    headers = {**OPERATOR, "Host": "evil.example.com", "X-Forwarded-Host": "evil.example.com"}
    scanned = api.scan_now(headers, b"{}")
    assert scanned.status == 202, scanned.body
    assert scanned.headers["Location"] == (
        f"https://pitcrew.example.net/api/dlq/scans/{scanned.body['id']}")
    replayed = api.request_replay(headers, json.dumps({"group": group, "dryRun": True}).encode())
    assert replayed.status == 202, replayed.body
    assert replayed.headers["Location"] == (
        f"https://pitcrew.example.net/api/dlq/replays/{replayed.body['id']}")


def test_no_link_rather_than_a_relative_one(orders: str, receiver: Receiver,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PITCREW_PUBLIC_BASE_URL", raising=False)
    _ingest(orders, [_order(1)])
    (note,) = receiver.received
    assert [a for a in note["actions"] if a.get("url")] == []
    assert any(a.get("command", "").startswith("pitcrew dlq show") for a in note["actions"])


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize("call", [
    lambda: api.show_message(READER, "é\x00-../../etc", {}),
    lambda: api.show_message(READER, "0" * 12 + "-" + "\u202e" * 20, {"body": "true"}),
    lambda: api.show_group(READER, "ZZZZ\n", {}),
    lambda: api.show_group(READER, "0" * 12, {"limit": "99999999999999999999"}),
    lambda: api.show_group(READER, "0" * 12, {"limit": "0"}),
    lambda: api.show_group(READER, "0" * 12, {"continuation": "bm90IGpzb24"}),
    lambda: api.show_group(READER, "0" * 12, {"continuation": encode_token({"after": "x'"})}),
    lambda: api.show_group(READER, "0" * 12, {"since": "0001-01-01"}),
    lambda: api.show_group(READER, "0" * 12, {"since": "2000-01-01T00:00:00+23:59"}),
    lambda: api.purge(OPERATOR, b'{"before": "2999-12-31T23:59:59-23:59"}'),
    lambda: api.show_group(READER, "0" * 12, {"since": "2026-01-02", "until": "2026-01-01"}),
    lambda: api.show_group(READER, "0" * 12, {"since": "2020-01-01", "until": "2026-01-01"}),
    lambda: api.show_group(READER, "0" * 12, {"text": "a\x00b"}),
    lambda: api.show_group(READER, "0" * 12, {"text": "x" * 1000}),
    lambda: api.show_group(READER, "0" * 12, {"status": "gone"}),
    lambda: api.show_group(READER, "0" * 12, {"prop.\x07": "v"}),
    lambda: api.list_groups(READER, {"limit": "1001"}),
    lambda: api.list_replays(READER, {"until": "0001-01-05"}),
    lambda: api.list_replays(READER, {"continuation": encode_token({"after": "nope"})}),
    lambda: api.show_replay(READER, "../../x"),
    lambda: api.show_scan(READER, "\u0661" * 14 + "-deadbeef"),
    lambda: api.scan_now(OPERATOR, b"[" * 100_000 + b"]" * 100_000),
    lambda: api.archive(OPERATOR, b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    lambda: api.purge(OPERATOR, b'{"group": ' + b"{" * 50 + b"}" * 50 + b"}"),
    lambda: api.edit_message(OPERATOR, "0" * 12 + "-" + "0" * 20, b"[" * 3000),
    lambda: api.archive(OPERATOR, json.dumps({"messages": ["x\x00"]}).encode()),
])
def test_hostile_input_is_a_400(orders: str, call: Any) -> None:
    answer = call()
    assert answer.status == 400, answer.body
    assert answer.body["error"] == "invalid_input"


def test_a_rate_or_batch_of_zero_is_refused_not_taken_for_the_default(orders: str) -> None:
    """0 is a value the operator gave: a 400 naming it, twice, and no job queued."""
    group = _ingest(orders, [_order(1)])
    for field, body in (("rate", {"rate": 0}), ("batchSize", {"batchSize": 0}),
                        ("rate", {"rate": 0.0}), ("rate", {"rate": 0})):
        answer = api.request_replay(OPERATOR, json.dumps(
            {"group": group, "dryRun": True, **body}).encode())
        assert answer.status == 400, answer.body
        assert answer.body["field"] == field, answer.body
    assert api.list_replays(READER, {}).body["jobs"] == []


@pytest.mark.parametrize("rate", ["0", "-1", "nan", "inf"])
def test_the_cli_refuses_a_rate_that_is_not_above_0_before_asking(rate: str) -> None:
    from typer.testing import CliRunner

    from pitcrew.cli.main import app

    result = CliRunner().invoke(app, ["dlq", "replay", "--group", "abc", "--rate", rate])
    assert result.exit_code == 2, result.output
    assert "--rate" in result.output and "above 0" in result.output
    assert not isinstance(result.exception, ValueError)


@pytest.mark.parametrize("queue", ["UPPER", "é-orders", "a\x1bb", "x" * 57, "ab"])
def test_demo_poison_refuses_a_queue_name_azure_would_refuse(queue: str) -> None:
    from typer.testing import CliRunner

    from pitcrew.cli.main import app

    result = CliRunner().invoke(app, ["dlq", "demo-poison", "--queue", queue, "--count", "1"])
    assert result.exit_code == 2, result.output
    assert "--queue" in result.output and "storage queue name" in result.output
