"""Issue 16: the Storage round trips one event costs, counted on the wire (a transport under the
real SDK clients, against Azurite): nothing read that was just written, nothing scanned that
the guarantees do not need."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from pitcrew.bootstrap import reset_services
from pitcrew.intake import api
from pitcrew.runtime import get_runtime, reset_runtime
from tests.conftest import SAMPLES

HEADERS = {"content-type": "application/json"}


class Wire:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.batch_tables: list[str] = []  # the table each $batch writes to

    def transport(self) -> Any:
        from azure.core.pipeline.transport import RequestsTransport

        wire = self

        class Counting(RequestsTransport):  # type: ignore[misc]
            def send(self, request: Any, **kwargs: Any) -> Any:
                with wire.lock:
                    wire.requests.append((request.method, unquote(request.url)))
                    if request.url.endswith("/$batch"):
                        body = bytes(getattr(request, "content", None) or request.body or b"")
                        found = re.search(rb"\r\n[A-Z]+ \S+/([A-Za-z0-9]+)[(\s]", body)
                        wire.batch_tables.append(found.group(1).decode() if found else "?")
                return super().send(request, **kwargs)

        return Counting()


def events(count: int) -> list[dict[str, Any]]:
    template = json.loads((SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_text())[0]
    out = []
    for _ in range(count):
        version = uuid.uuid4().hex
        data = dict(template["data"], Version=version, ObjectName=f"s{version[:8]}")
        out.append(dict(template, id=str(uuid.uuid4()), subject=f"s{version[:8]}", data=data))
    return out


def event_body() -> bytes:
    return json.dumps(events(1)).encode()


@pytest.fixture
def wire(pitcrew_env: Path) -> Wire:
    """Every Storage request of the process recorded, from after the tables exist."""
    reset_runtime()
    reset_services()
    recorded = Wire()
    get_runtime().storage_transport = recorded.transport
    assert api.receive_events("POST", HEADERS, event_body()).status == 200  # tables created
    recorded.requests.clear()
    return recorded


def test_one_event_reads_silences_once_its_group_once_and_never_scans_alerts(wire: Wire) -> None:
    headers = HEADERS
    result = api.receive_events("POST", headers, event_body())
    assert result.status == 200
    assert result.body["events"][0]["outcome"] == "handled"  # type: ignore[index]
    prefix = get_runtime().settings.table_prefix
    silences = [u for m, u in wire.requests if m == "GET" and f"/{prefix}silences" in u]
    groups = [u for m, u in wire.requests if m == "GET" and f"/{prefix}alertgroups(" in u]
    scans = [u for m, u in wire.requests if m == "GET" and f"/{prefix}alerts()" in u
             and "PartitionKey eq" not in u]
    group_writes = [u for m, u in wire.requests if m in ("POST", "PUT", "PATCH", "MERGE")
                    and f"/{prefix}alertgroups" in u]
    assert len(silences) == 1, silences  # one read for the send and its inline flush
    assert groups == [], groups  # a group of one alert is inserted, not looked up first
    assert scans == [], scans  # no inhibition rules: no scan of every firing alert
    # Created already scheduled and leased for the inline flush, then saved after it.
    assert len(group_writes) == 2, group_writes
    alert_reads = [u for m, u in wire.requests if m == "GET" and f"/{prefix}alerts" in u]
    # The group is new: its one alert is known, and one joining meanwhile would rewrite the
    # group row (so the flush's closing save fails and it reads again): nothing read back.
    assert alert_reads == [], alert_reads
    log_reads = [u for m, u in wire.requests if m == "GET" and f"/{prefix}nflog" in u]
    assert log_reads == [], log_reads  # a new group's log is inserted, not looked up first


def test_a_delivery_claims_completes_and_audits_its_events_together(wire: Wire) -> None:
    """120 events in one delivery: their claims, completions and audit records go in
    transactions of at most 100 (2 round trips each, not 120), the silences are read once;
    every event is still handled, completed and audited on its own."""
    headers = HEADERS
    delivery = events(120)
    result = api.receive_events("POST", headers, json.dumps(delivery).encode())
    assert result.status == 200
    assert {e["outcome"] for e in result.body["events"]} == {"handled"}  # type: ignore[index]
    prefix = get_runtime().settings.table_prefix
    batches = [u for m, u in wire.requests if m == "POST" and u.endswith("/$batch")]
    claims = [u for m, u in wire.requests if f"/{prefix}claims" in u]
    audits = [u for m, u in wire.requests if f"/{prefix}audit" in u]
    silences = [u for m, u in wire.requests if f"/{prefix}silences" in u]
    assert claims == [] and audits == [], (claims, audits)  # none row by row
    # Claims, completions, audit: 100 + 20 each. (The delivery's other shared-partition
    # writes, its alert groups and outbox rows, may share transactions too: group commit.)
    assert len(batches) == len(wire.batch_tables)
    by_table = Counter(table.removeprefix(prefix) for table in wire.batch_tables)
    assert (by_table["claims"], by_table["audit"]) == (4, 2), by_table
    assert len(silences) == 1, silences

    from pitcrew.bootstrap import get_services

    services = get_services()
    for event in delivery:
        key = api.only_events(api.parse_request(json.dumps([event]).encode(), headers))[0]
        assert services.state.claim_status("event", key.claim_key) == "done"
    now = datetime.now(UTC)
    expiry = [r for r in services.audit.query(since=now - timedelta(hours=1), until=now,
                                                limit=10_000) if r.action == "notify.expiry"]
    audited = {r.correlation_id for r in expiry}
    assert len(audited) == 121, len(audited)  # the first event's, and one per event of these

    # The same delivery again (Event Grid retries when it got no answer): all duplicates,
    # nothing handled twice, no new audit record.
    again = api.receive_events("POST", headers, json.dumps(delivery).encode())
    assert again.status == 200
    assert {e["outcome"] for e in again.body["events"]} == {"duplicate"}  # type: ignore[index]


def default_tree(pitcrew_env: Path) -> None:
    """The documented default tree (group_by [kind, alertRule], group_wait 30s) to the hook."""
    text = pitcrew_env.read_text()
    pitcrew_env.write_text(text[:text.index("routes:")] + "route:\n  receiver: hook\n"
                           + text[text.index("outbox:"):])
    reset_runtime()
    reset_services()


def test_a_delivery_joins_its_group_together_and_one_notification_lists_it(
    pitcrew_env: Path, receiver: Any
) -> None:
    """250 expiries of one rule in one delivery under the default tree: the group read once,
    the alert rows inserted in transactions of 100 (none row by row); group_wait later one
    notification lists all 250, and its notification log (over one 64 KiB property) is saved,
    so the next tick tells nothing again. The same delivery again is all duplicates."""
    default_tree(pitcrew_env)
    recorded = Wire()
    get_runtime().storage_transport = recorded.transport
    assert api.receive_events("POST", HEADERS, event_body()).status == 200  # tables created
    recorded.requests.clear()
    delivery = events(250)
    result = api.receive_events("POST", HEADERS, json.dumps(delivery).encode())
    assert result.status == 200
    body = result.body["events"]  # type: ignore[index]
    assert {e["outcome"] for e in body} == {"handled"}
    assert {e["detail"] for e in body} == {
        "notification grouped; its group is sent after group_wait"}
    prefix = get_runtime().settings.table_prefix
    rows = [u for m, u in recorded.requests if f"/{prefix}alerts(" in u or
            u.endswith(f"/{prefix}alerts")]
    groups = [u for m, u in recorded.requests if f"/{prefix}alertgroups" in u]
    batches = [u for m, u in recorded.requests if m == "POST" and u.endswith("/$batch")]
    assert rows == [], rows  # no alert row written or read on its own
    assert len(groups) == 1, groups  # the group (made by the first event) read once
    assert len(batches) == 12, batches  # claims, alerts, audit, completions: 100+100+50 each

    from pitcrew.bootstrap import get_services

    pipeline = get_services().alerting
    assert receiver.received == []  # group_wait has not passed
    now = datetime.now(UTC)
    assert pipeline.sweep(now=now + timedelta(seconds=31))
    assert len(receiver.received) == 1
    told = receiver.received[0]
    assert told["facts"]["Firing"] == "251" and len(told["alerts"]) == 20
    assert pipeline.sweep(now=now + timedelta(minutes=6)) == [
        g.id for g in pipeline.store.groups()]  # the group_interval tick looked ...
    assert len(receiver.received) == 1  # ... and found nothing new to tell

    again = api.receive_events("POST", HEADERS, json.dumps(delivery).encode())
    assert {e["outcome"] for e in again.body["events"]} == {"duplicate"}  # type: ignore[index]
    assert len(receiver.received) == 1


def test_deliveries_of_one_rule_at_once_join_one_group(pitcrew_env: Path, receiver: Any) -> None:
    """Four deliveries of one rule at the same time (four instances): every alert joins the
    one group exactly once; one notification lists them all."""
    default_tree(pitcrew_env)
    deliveries = [events(60) for _ in range(4)]
    results: list[int] = []

    def deliver(delivery: list[dict[str, Any]]) -> None:
        results.append(api.receive_events("POST", HEADERS, json.dumps(delivery).encode()).status)

    threads = [threading.Thread(target=deliver, args=(d,)) for d in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 4

    from pitcrew.bootstrap import get_services

    pipeline = get_services().alerting
    [group] = pipeline.store.groups()
    assert len(pipeline.store.alerts(group.id)) == 240
    pipeline.sweep(now=datetime.now(UTC) + timedelta(seconds=31))
    assert [m["facts"]["Firing"] for m in receiver.received] == ["240"]
