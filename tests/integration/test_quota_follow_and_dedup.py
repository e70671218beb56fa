"""Increase requests under faults and repeats, end to end (local Azure endpoint through
azure-mgmt-quota, Azurite, a webhook receiver):

- following: one request whose status cannot be read never stops the others; Azure's 404 ends
  it Failed, a run of unreadable statuses ends it Escalated, a transient error keeps it open
  (counted, logged) and the quota is never blocked for ever;
- a quota the Quota API cannot adjust: an operator posting the same request again (or two at
  once) gets one record, one notification and an audit record per post.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from pitcrew.audit import AuditQuery
from pitcrew.bootstrap import get_services
from pitcrew.quota import api
from pitcrew.quota import requests as quota_requests
from pitcrew.quota.model import IncreaseRequest, QuotaId, SubmittedRequest
from pitcrew.quota.ports import QuotaServices, QuotaSource
from pitcrew.quota.requests import follow, request_increase
from pitcrew.quota.scan import scan
from pitcrew_dev.azure_endpoint import LocalAzure, start_local_azure
from tests.integration.quota_support import QuotaWorld, quota_world
from tests.receiver import Receiver

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
AAA, ZZZ = "aaaFamily", "zzzFamily"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LocalAzure]:
    with start_local_azure(config={}) as local:
        yield local


@pytest.fixture
def world(pitcrew_env: Path, endpoint: LocalAzure, monkeypatch: pytest.MonkeyPatch
          ) -> QuotaWorld:
    return quota_world(pitcrew_env, endpoint, monkeypatch)




class Faulty:
    """The real QuotaSource, except that reading the status of chosen requests fails: with a
    given exception, or (None) by asking the Quota API about a request it does not know, so
    the 404 comes from the endpoint through the SDK."""

    def __init__(self, inner: QuotaSource) -> None:
        self.inner = inner
        self.faults: dict[str, BaseException | None] = {}
        self.reads: list[str] = []

    def readings(self, scope: str) -> Any:
        return self.inner.readings(scope)

    def submit(self, quota: QuotaId, new_limit: int) -> SubmittedRequest:
        return self.inner.submit(quota, new_limit)

    def request_status(self, scope: str, azure_request: str) -> SubmittedRequest:
        self.reads.append(azure_request)
        if azure_request in self.faults:
            fault = self.faults[azure_request]
            if fault is None:
                return self.inner.request_status(scope, f"gone-{azure_request}")
            raise fault
        return self.inner.request_status(scope, azure_request)


def quota_notes(receiver: Receiver, name: str | None = None) -> list[dict[str, Any]]:
    return [n for n in receiver.received if n.get("kind") == "quota"
            and (name is None or n["facts"].get("quota") == name)]


def audit_records(target: str) -> list[Any]:
    now = datetime.now(UTC)
    page = get_services().audit.page(AuditQuery(since=now - timedelta(days=1),
                                                until=now + timedelta(minutes=1), target=target),
                                     limit=1000)
    return list(page.items)


def two_open_requests(world: QuotaWorld, *, aaa_polls: int = 1
                      ) -> tuple[QuotaServices, Faulty, dict[str, IncreaseRequest]]:
    """aaaFamily and zzzFamily, each with an operator's open request (Accepted)."""
    for name in (AAA, ZZZ):
        world.seed(name=name, limit=100, usage=50, polls=aaa_polls if name == AAA else 1,
                   outcome="Succeeded")
    q = get_services().quota
    scan(q, now=T0)
    opened: dict[str, IncreaseRequest] = {}
    for name in (AAA, ZZZ):
        state = q.store.get(QuotaId(world.scope, name))
        assert state is not None
        outcome = request_increase(q, state, 150, actor="user:olga", reason="growth",
                                   dry_run=False)
        assert outcome.sent and outcome.request.status == "Accepted", outcome
        opened[name] = outcome.request
    faulty = Faulty(q.source)
    q.source = faulty
    return q, faulty, opened


def open_status(q: QuotaServices, world: QuotaWorld, name: str) -> str | None:
    request = q.requests.open_for(QuotaId(world.scope, name))
    return request.status if request else None


def recorded(q: QuotaServices, request_id: str) -> IncreaseRequest:
    page = q.requests.page(limit=100)
    return next(r for r in page.items if r.request_id == request_id)


# ------------------------------------------------------------------------------- following

def test_a_request_azure_no_longer_knows_ends_failed_and_never_stops_the_others(
        world: QuotaWorld, receiver: Receiver) -> None:
    """The auditor's reproduction: the status of aaa answers 404 (ResourceNotFoundError).
    Before, follow() raised on every run and both requests stayed Accepted for ever."""
    q, faulty, opened = two_open_requests(world)
    faulty.faults[opened[AAA].azure_request] = None  # a real 404 from the Quota API
    for _ in range(3):
        follow(q)
    # zzz is followed as if nothing happened: InProgress, then Succeeded, the limit raised.
    assert open_status(q, world, ZZZ) is None
    assert recorded(q, opened[ZZZ].request_id).status == "Succeeded"
    assert world.limit_of(ZZZ) == 150
    # aaa ended Failed at the first run, with the reason, and nobody asks about it again.
    assert open_status(q, world, AAA) is None
    failed = recorded(q, opened[AAA].request_id)
    assert failed.status == "Failed"
    assert "404" in failed.message or "not found" in failed.message.lower(), failed.message
    assert faulty.reads.count(opened[AAA].azure_request) == 1
    # A person is told (once), with the support text; the end is audited.
    notes = [n for n in quota_notes(receiver, AAA) if n["facts"].get("status") == "Failed"]
    assert len(notes) == 1
    assert "What: increase the quota aaaFamily" in notes[0]["facts"]["supportRequest"]
    ends = [r for r in audit_records(f"{world.scope}/{AAA}")
            if r.action == "quota.request.status"]
    assert [(r.outcome, r.details["status"]) for r in ends] == [("failed", "Failed")]
    # The quota is not blocked: a new request for it is claimed and sent.
    state = q.store.get(QuotaId(world.scope, AAA))
    assert state is not None
    again = request_increase(q, state, 160, actor="user:olga", reason="again", dry_run=False)
    assert again.sent and again.request.request_id != opened[AAA].request_id


def test_the_ports_request_gone_ends_the_request_too(
        world: QuotaWorld, receiver: Receiver) -> None:
    """The adapter turns the SDK's ResourceNotFoundError into the port's RequestGone (the
    engine imports no SDK); a provider raising it directly is read the same way."""
    from pitcrew.quota.model import RequestGone

    q, faulty, opened = two_open_requests(world)
    faulty.faults[opened[AAA].azure_request] = RequestGone("NotFound", "request not found")
    changed = [(o.request.quota.name, o.request.status) for o in follow(q)]
    assert sorted(changed) == [(AAA, "Failed"), (ZZZ, "InProgress")]
    assert [o.request.status for o in follow(q)] == ["Succeeded"]
    assert open_status(q, world, AAA) is None and open_status(q, world, ZZZ) is None


def test_a_transient_error_keeps_the_request_open_counted_then_escalates(
        world: QuotaWorld, receiver: Receiver, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    q, faulty, opened = two_open_requests(world, aaa_polls=3)
    unavailable = HttpResponseError(message="Service Unavailable")
    unavailable.status_code = 503
    faulty.faults[opened[AAA].azure_request] = unavailable
    with caplog.at_level(logging.WARNING, logger="pitcrew.quota.requests"):
        for _ in range(3):
            follow(q)
    # Still open and still Accepted (retried next run), the failures counted and visible.
    current = q.requests.open_for(QuotaId(world.scope, AAA))
    assert current is not None and current.status == "Accepted"
    assert "attempt 3 of" in current.message and "503" in current.message, current.message
    # The count is the request's own field (the API shows it), not read back from its words.
    assert current.read_failures == 3 and current.to_dict()["readFailures"] == 3
    assert faulty.reads.count(opened[AAA].azure_request) == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and opened[AAA].request_id in r.getMessage()]
    assert len(warnings) == 3
    assert not [n for n in quota_notes(receiver, AAA) if n["facts"]["status"] != "Accepted"]
    assert recorded(q, opened[ZZZ].request_id).status == "Succeeded"

    # A read that works again clears the count; the next run of failures counts from one.
    faulty.faults.clear()
    assert follow(q) == []  # still Accepted: nothing to tell anyone
    current = q.requests.open_for(QuotaId(world.scope, AAA))
    assert current is not None and current.status == "Accepted"
    assert "attempt" not in current.message, current.message
    assert current.read_failures == 0

    # A connection error is transient as well; at the bound the request is escalated to a
    # person, audited, and the quota released for a new request.
    monkeypatch.setattr(quota_requests, "MAX_READ_FAILURES", 2)
    faulty.faults[opened[AAA].azure_request] = ServiceRequestError("connection refused")
    follow(q)
    assert open_status(q, world, AAA) is not None
    follow(q)
    assert open_status(q, world, AAA) is None
    ended = recorded(q, opened[AAA].request_id)
    assert ended.status == "Escalated" and "ServiceRequestError" in ended.message
    escalated = [n for n in quota_notes(receiver, AAA) if n["facts"]["status"] == "Escalated"]
    assert len(escalated) == 1 and "supportRequest" in escalated[0]["facts"]
    assert [r.outcome for r in audit_records(f"{world.scope}/{AAA}")
            if r.action == "quota.request.status" and r.details["status"] == "Escalated"
            ] == ["failed"]


def test_unreadable_for_longer_than_the_follow_window_is_escalated(
        world: QuotaWorld, receiver: Receiver) -> None:
    q, faulty, opened = two_open_requests(world)
    faulty.faults[opened[AAA].azure_request] = ServiceRequestError("connection refused")
    follow(q)
    assert open_status(q, world, AAA) == "Accepted"
    later = datetime.now(UTC) + timedelta(hours=q.policy.quota.follow_request_hours + 1)
    follow(q, now=later)
    ended = recorded(q, opened[AAA].request_id)
    assert ended.status == "Escalated" and "hours" in ended.message, ended.message


def test_concurrent_followers_end_a_gone_request_once(
        world: QuotaWorld, receiver: Receiver) -> None:
    q, faulty, opened = two_open_requests(world)
    faulty.faults[opened[AAA].azure_request] = None
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        try:
            follow(q)
        except BaseException as exc:  # the test reports any
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert open_status(q, world, AAA) is None
    assert len([n for n in quota_notes(receiver, AAA) if n["facts"]["status"] == "Failed"]) == 1


def test_the_timer_raises_only_when_no_request_could_be_followed(
        world: QuotaWorld, receiver: Receiver) -> None:
    q, faulty, opened = two_open_requests(world)
    unavailable = HttpResponseError(message="Bad Gateway")
    unavailable.status_code = 502
    faulty.faults[opened[AAA].azure_request] = unavailable
    assert api.run_follow() == 1  # zzz moved; aaa recorded as a failed read, no raise
    faulty.faults[opened[ZZZ].azure_request] = unavailable
    with pytest.raises(RuntimeError, match="no open quota request could be followed"):
        api.run_follow()
    # Both failures were recorded before the timer raised.
    for name in (AAA, ZZZ):
        current = q.requests.open_for(QuotaId(world.scope, name))
        assert current is not None and "attempt" in current.message, name


# ---------------------------------------------------------------- a quota that is not adjustable

FIXED = "lowPriorityCores"


def operator_world(world: QuotaWorld, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from pitcrew.auth import encode_principal

    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    world.seed(name=FIXED, limit=10, usage=2, adjustable=False)
    scan(get_services().quota, now=T0)  # 20 %: no alert, no automatic request
    return {"X-MS-CLIENT-PRINCIPAL": encode_principal("olga", ["Operator"])}


def not_adjustable_records(world: QuotaWorld) -> list[dict[str, Any]]:
    from pitcrew.auth import encode_principal

    reader = {"X-MS-CLIENT-PRINCIPAL": encode_principal("rita", ["Reader"])}
    answer = api.list_requests(reader, {"limit": "100", "status": "NotAdjustable"})
    assert answer.status == 200, answer.body
    return [r for r in answer.body["requests"] if r["subscription"] == world.subscription]


def test_posting_a_not_adjustable_request_again_records_and_notifies_once(
        world: QuotaWorld, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = operator_world(world, monkeypatch)
    body = f'{{"quota": "{world.scope}/{FIXED}", "limit": 20, "dryRun": false}}'.encode()
    answers = [api.create_request(operator, body) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert all(a.body["status"] == "NotAdjustable" for a in answers)
    ids = {a.body["id"] for a in answers}
    assert len(ids) == 1, ids
    assert "already recorded" not in answers[0].body["detail"]
    assert all("already recorded" in a.body["detail"] for a in answers[1:])
    assert all("supportRequest" in a.body for a in answers)
    assert [r["id"] for r in not_adjustable_records(world)] == list(ids)
    notes = [n for n in quota_notes(receiver, FIXED) if n["id"].startswith("quota-request:")]
    assert len(notes) == 1 and notes[0]["facts"]["status"] == "NotAdjustable"
    # Each post is audited: who, which quota, what became of it.
    audited = [r for r in audit_records(f"{world.scope}/{FIXED}")
               if r.action == "quota.request.not_adjustable"]
    assert len(audited) == 3
    assert all(r.actor.endswith("olga") for r in audited)
    assert sorted(r.outcome for r in audited) == ["failed", "skipped", "skipped"]
    assert not world.requests_for(FIXED)  # nothing was ever sent to the Quota API


def test_two_operators_posting_at_once_get_one_record(
        world: QuotaWorld, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = operator_world(world, monkeypatch)
    body = f'{{"quota": "{world.scope}/{FIXED}", "limit": 20, "dryRun": false}}'.encode()
    answers: list[Any] = []
    barrier = threading.Barrier(4)

    def post() -> None:
        barrier.wait()
        answers.append(api.create_request(operator, body))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status for a in answers) == [200] * 4, [a.body for a in answers]
    assert len({a.body["id"] for a in answers}) == 1
    assert len(not_adjustable_records(world)) == 1
    notes = [n for n in quota_notes(receiver, FIXED) if n["id"].startswith("quota-request:")]
    assert len(notes) == 1


def test_the_operator_and_the_automatic_path_share_the_one_record(
        world: QuotaWorld, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = operator_world(world, monkeypatch)
    world.seed(name=FIXED, usage=9)  # 90 %: critical, the automatic path records it
    scan(get_services().quota, now=T0 + timedelta(hours=1))
    (auto,) = not_adjustable_records(world)
    body = f'{{"quota": "{world.scope}/{FIXED}", "limit": 20, "dryRun": false}}'.encode()
    answer = api.create_request(operator, body)
    assert answer.status == 200 and answer.body["id"] == auto["id"]
    assert "already recorded" in answer.body["detail"]
    assert len(not_adjustable_records(world)) == 1
