"""Dead letters end to end on Azurite: a poison queue and Event Grid dead-letter blobs are
ingested into the store, grouped, notified once, viewed (audited), edited, archived and
replayed with nothing lost or doubled."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError

from pitcrew.auth import encode_principal
from pitcrew.bootstrap import get_services
from pitcrew.deadletter import api
from pitcrew.deadletter.ingest import scan
from pitcrew.deadletter.replay import ReplayWorker
from pitcrew.runtime import get_runtime
from tests.conftest import SAMPLES
from tests.integration.dlq_support import get_deadletter
from tests.receiver import Receiver

OPERATOR = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Operator"])}
READER = {"X-MS-CLIENT-PRINCIPAL": encode_principal("eve@example.com", ["Reader"])}


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def write_policy(policy: Path, deadletter: str) -> None:
    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import reset_runtime

    policy.write_text(policy.read_text() + deadletter)
    reset_runtime()
    reset_services()


@pytest.fixture
def queue_names(pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[str]:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    write_policy(pitcrew_env, (
        "deadletter:\n"
        "  thresholds: [10, 100]\n"
        "  edit: {allowed: true}\n"
        "  sources:\n"
        f"    - name: orders\n      type: storage-queue\n      queue: {unique_name}\n"
        f"    - name: egdl\n      type: eventgrid-blob\n      container: {unique_name}\n"
        f"      replay_to: queue:{unique_name}-eg\n"
    ))
    yield unique_name


def queue(name: str) -> Any:
    return get_runtime().storage_service("queue").get_queue_client(name)


def poison(name: str, bodies: list[str]) -> None:
    """Poison messages of the workload queue `name`, which exists as it does in any real
    deployment (pitcrew replays into queues, it never creates them)."""
    with contextlib.suppress(ResourceExistsError):
        queue(name).create_queue()
    client = queue(f"{name}-poison")
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    for body in bodies:
        client.send_message(base64.b64encode(body.encode()).decode())


def drain(name: str) -> list[str]:
    client = queue(name)
    out: list[str] = []
    while True:
        batch = list(client.receive_messages(messages_per_page=32, max_messages=32))
        if not batch:
            return out
        for message in batch:
            out.append(message.content)
            client.delete_message(message)


def audit(action: str | None = None) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    records = get_services().audit.query(since=now - timedelta(hours=1),
                                         until=now + timedelta(minutes=1))
    return [r.to_dict() for r in records if action is None or r.action == action]


def run_job(job_id: str, clock: FakeClock | None = None) -> str:
    clock = clock or FakeClock()
    return ReplayWorker(get_deadletter(), job_id, clock=clock, sleep=clock.sleep).run()


def test_poison_queue_ingest_group_notify_replay(queue_names: str, receiver: Receiver) -> None:
    q = queue_names
    bodies = [json.dumps({"order": i, "sku": f"A-{i}"}) for i in range(5)]
    poison(q, bodies)
    dl = get_deadletter()
    (report,) = scan(dl, ["orders"])
    assert report.stored == 5 and report.unsettled == 0
    assert drain(f"{q}-poison") == []  # settled at the source after the store write
    # One group, one notification with what to do.
    groups = api.list_groups(READER, {}).body["groups"]
    assert len(groups) == 1 and groups[0]["count"] == 5
    group = groups[0]["id"]
    assert len(receiver.received) == 1
    note = receiver.received[0]
    assert note["kind"] == "deadletter" and q in note["title"]
    assert any(group in (a.get("command") or "") for a in note["actions"])
    # A second scan finds nothing and sends nothing.
    assert scan(dl, ["orders"])[0].received == 0
    assert len(receiver.received) == 1
    # Viewing metadata is Reader; the body is audited with who looked.
    shown = api.show_group(READER, group, {}).body
    assert shown["statuses"] == {"failed": 5}
    first = shown["messages"][0]["id"]
    assert "body" not in api.show_message(READER, first, {}).body
    with_body = api.show_message(READER, first, {"body": "true"}).body
    # Decoded as the queue trigger decodes it, not the stored base64.
    assert with_body["body"]["text"] in bodies and with_body["body"]["encoding"] == "base64"
    assert with_body["body"]["format"] == "json" and "order" in with_body["body"]["json"]
    (viewed,) = audit("dlq.view-body")
    assert viewed["actor"] == "user:eve@example.com"
    # Acting needs Operator.
    assert api.request_replay(READER, json.dumps({"group": group}).encode()).status == 403
    accepted = api.request_replay(OPERATOR, json.dumps({"group": group, "rate": 50}).encode())
    assert accepted.status == 202, accepted.body
    job = accepted.body["id"]
    clock = FakeClock()
    assert run_job(job, clock) == "succeeded"
    shown_job = api.show_replay(READER, job).body
    assert shown_job["counts"]["sent"] == 5 and shown_job["total"] == 5
    assert shown_job["counts"]["possibleDuplicates"] == 0
    # Exactly the originals, byte for byte, once each.
    replayed = drain(q)
    assert sorted(replayed) == sorted(base64.b64encode(b.encode()).decode() for b in bodies)
    assert drain(f"{q}-poison") == []
    assert api.show_group(READER, group, {}).body["statuses"] == {"replayed": 5}
    (done,) = audit("dlq.replay")
    assert done["actor"] == "user:ops@example.com" and done["details"]["counts"]["sent"] == 5
    assert audit("dlq.replay.request")[0]["actor"] == "user:ops@example.com"
    # Replaying again finds nothing left to send.
    again = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    assert run_job(again) == "succeeded"
    assert drain(q) == []


def test_a_replayed_message_whose_send_answer_was_lost_is_marked_possible_duplicate(
        queue_names: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Storage SDK sends a message again when the answer to its send is lost: the target
    may hold it twice. The job and the store say which message, never a silent double."""
    from azure.core.exceptions import ServiceResponseError
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.queue import ExponentialRetry

    from pitcrew.runtime import pooled_transport

    q = queue_names
    poison(q, ["a", "b", "c"])
    dl = get_deadletter()
    assert scan(dl, ["orders"])[0].stored == 3
    group = api.list_groups(READER, {}).body["groups"][0]["id"]
    job = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    lost: list[str] = []
    backoffs: list[float] = []

    # The queue SDK's retry waits its backoff (15 s the first time) before it sends again:
    # noted, not waited, so the test does not idle; the resend is what it checks.
    waited = ExponentialRetry.get_backoff_time

    def no_wait(self: Any, settings: dict[str, Any]) -> float:
        backoffs.append(waited(self, settings))
        return 0

    monkeypatch.setattr(ExponentialRetry, "get_backoff_time", no_wait)

    class LosesOneReplayAnswer(RequestsTransport):  # type: ignore[misc]
        def send(self, request: Any, **kwargs: Any) -> Any:
            response = super().send(request, **kwargs)  # the target queue has it now
            if (request.method == "POST" and f"/{q}/messages" in request.url.split("?")[0]
                    and not lost):
                lost.append(request.url)
                raise ServiceResponseError("connection reset after the request (injected)")
            return response

    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import reset_runtime

    reset_runtime()
    reset_services()  # built anew, on the injecting transport
    get_runtime().storage_transport = lambda: LosesOneReplayAnswer(
        session=pooled_transport().session, session_owner=True)
    try:
        assert run_job(job) == "succeeded"
    finally:
        reset_runtime()
        reset_services()
    assert lost, "the injected failure happened"
    assert backoffs, "the SDK retried the lost send after its backoff"
    shown = api.show_replay(READER, job).body
    assert shown["counts"]["sent"] == 3 and shown["counts"]["possibleDuplicates"] == 1
    messages = api.show_group(READER, group, {}).body["messages"]
    assert sorted(m["replay"]["possibleDuplicate"] for m in messages) == [False, False, True]
    assert len(drain(q)) == 4  # the doubled one twice: said, not hidden


def test_group_threshold_notifies_once_per_level(queue_names: str, receiver: Receiver) -> None:
    q = queue_names
    dl = get_deadletter()
    poison(q, [f"m{i}" for i in range(3)])
    scan(dl, ["orders"])
    poison(q, [f"n{i}" for i in range(9)])
    scan(dl, ["orders"])
    poison(q, [f"o{i}" for i in range(2)])
    scan(dl, ["orders"])
    assert [m["id"].rsplit(":", 1)[-1] for m in receiver.received] == ["1", "10"]
    assert receiver.received[1]["facts"]["Count"] == "12"


def test_second_ingest_is_recognised(queue_names: str) -> None:
    """A crash after the store write, before settling: the message is back, stored once."""
    from pitcrew.azure.queues import PoisonQueueSource

    q = queue_names
    poison(q, ["crash-me"])
    dl = get_deadletter()
    config = dl.policy.source("orders")
    source = PoisonQueueSource(get_runtime().storage_service("queue"), name="orders", queue=q,
                               entity=config.entity)
    (batch,) = list(source.receive(10))
    assert dl.store.put_many([(c.message, c.body) for c in batch]) == {batch[0].message.id}
    # ... crash: never settled. The message becomes visible again; model that directly.
    queue(f"{q}-poison").update_message(batch[0].message.properties["message_id"],
                                        pop_receipt=_pop(batch), visibility_timeout=0)
    (report,) = scan(dl, ["orders"])
    assert report.received == 1 and report.stored == 0 and report.already_stored == 1
    assert drain(f"{q}-poison") == []
    (group,) = list(dl.store.groups())
    assert group.count == 1


def _pop(batch: list[Any]) -> str:
    settle = batch[0].settle
    cells = [c.cell_contents for c in settle.__closure__ or ()]
    return next(c for c in cells if isinstance(c, str) and c != batch[0].message.properties[
        "message_id"])


def test_edit_then_replay_and_archive(queue_names: str) -> None:
    q = queue_names
    poison(q, ["bad-1", "bad-2", "bad-3"])
    dl = get_deadletter()
    scan(dl, ["orders"])
    group = next(dl.store.groups()).id
    ids = sorted(m.id for m in dl.store.in_group(group))
    untouched = dl.store.body(ids[2]).decode()
    edited = api.edit_message(OPERATOR, ids[0], json.dumps(
        {"body": {"text": "fixed"}, "applicationProperties": {"fixed": True}}).encode())
    assert edited.status == 201, edited.body
    assert edited.body["editOf"] == ids[0]
    original = api.show_message(READER, ids[0], {}).body
    assert original["status"] == "superseded" and original["editedAs"] == edited.body["id"]
    assert api.edit_message(READER, ids[1], b'{"body": {"text": "x"}}').status == 403
    archived = api.archive(OPERATOR, json.dumps({"messages": [ids[1]]}).encode())
    assert archived.body == {"archived": 1, "skipped": 0}
    job = api.request_replay(OPERATOR, json.dumps({"group": group}).encode()).body["id"]
    assert run_job(job) == "succeeded"
    sent = drain(q)
    # The edit and the untouched third, never the superseded original or the archived one.
    assert sorted(sent) == sorted(["fixed", untouched])
    assert {r["action"] for r in audit()} >= {"dlq.edit", "dlq.archive", "dlq.replay"}
    # Retention: nothing is purged early; past retention everything settled goes.
    from pitcrew.deadletter.operations import purge

    assert purge(dl) == {}
    write_policy_retention(dl, 0.0000001)
    import time

    time.sleep(0.05)
    purged = purge(get_deadletter())
    assert purged == {"archived": 1, "replayed": 2, "superseded": 1}
    assert list(get_deadletter().store.in_group(group)) == []


def write_policy_retention(dl: Any, days: float) -> None:
    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import get_runtime

    path = get_runtime().settings.policy_path
    path.write_text(path.read_text().replace("deadletter:\n",
                                             f"deadletter:\n  retention_days: {days}\n"))
    reset_services()


def test_eventgrid_deadletter_blobs(queue_names: str, receiver: Receiver) -> None:
    name = queue_names
    dl = get_deadletter()
    container = get_runtime().storage_service("blob").get_container_client(name)
    container.create_container()
    sample = (SAMPLES / "eventgrid-deadletter-blob.json").read_bytes()
    events = json.loads(sample)
    second = dict(events[0], id="second-event-id")
    container.upload_blob("KV-EXPIRY/2026/11/21/7/1f0e.json", sample)
    container.upload_blob("KV-EXPIRY/2026/11/21/8/2a3b.json", json.dumps([second]).encode())
    (report,) = scan(dl, ["egdl"])
    assert report.stored == 2
    assert list(container.list_blobs()) == []  # settled: the blobs are gone once stored
    (group,) = list(dl.store.groups())
    assert group.count == 2 and group.reason == "MaxDeliveryAttemptsExceeded"
    assert len(receiver.received) == 1
    message = next(dl.store.in_group(group.id))
    assert message.delivery_count == 30
    queue(f"{name}-eg").create_queue()  # the topic's queue: it exists, pitcrew never makes it
    job = api.request_replay(OPERATOR, json.dumps({"group": group.id}).encode()).body["id"]
    assert run_job(job) == "succeeded"
    replayed = sorted(json.loads(m)["id"] for m in drain(f"{name}-eg"))
    assert replayed == sorted([events[0]["id"], "second-event-id"])


def test_bad_requests_name_the_problem(queue_names: str) -> None:
    bad = api.request_replay(OPERATOR, b'{"group": "nope00000000"}')
    assert bad.status == 400 and bad.body["field"] == "group"
    both = api.request_replay(OPERATOR, b'{"group": "a", "messages": ["b"]}')
    assert both.status == 400
    fast = api.request_replay(OPERATOR, b'{"messages": ["x"], "rate": 100000}')
    assert fast.status == 400 and fast.body["field"] == "rate"
    assert api.list_groups({}, {}).status == 401
