"""Two operators rotate the same secret at once (`pitcrew rotate … --force --reason A` and
`… --reason B`, POST /api/rotations), and the timer joins in: exactly one of them advances the
run, the other is told it is in progress (202 with the run), nobody gets a 5xx; one key
regenerated and one version promoted per run, one notification and one audited prepare.

Before: the second request's write (its force and reason) made the first one's save of the step
it had just done fail, so both answered 503 ("advanced by another instance", "step prepare is
running elsewhere"), the audit said `rotation.prepare succeeded` twice, and the run sat at
prepare until the timer took it over a minute later."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from pitcrew.auth import encode_principal
from pitcrew.rotation import api as rotation_api
from pitcrew.rotation.engine import RotationEngine
from tests.integration.rotation_support import (
    SLOTS,
    VAULT,
    RotationWorld,
    Seeded,
    audit_records,
    runs,
    time_travel,
)
from tests.integration.test_rotation_faults import Crash
from tests.receiver import Receiver

ROTATOR = {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Rotator"])}


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")


def rotate(secret: str, **extra: Any) -> Any:
    return rotation_api.request_rotation(
        ROTATOR, json.dumps({"vault": VAULT, "secret": secret, **extra}).encode())


def slow_steps(monkeypatch: pytest.MonkeyPatch, seconds: float,
               crash_at: str | None = None) -> list[str]:
    """Every step takes `seconds` longer (so a second request arrives while the first holds
    it); with `crash_at`, the first instance to get there dies there."""
    crashed: list[str] = []

    def faults(where: str) -> None:
        if where == crash_at and not crashed:
            crashed.append(where)
            raise Crash(where)
        if where.startswith("before:"):
            time.sleep(seconds)

    monkeypatch.setattr(rotation_api, "RotationEngine",
                        lambda services: RotationEngine(services, faults=faults))
    return crashed


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together (the second a few ms after the first)."""
    barrier = threading.Barrier(len(calls))

    def go(index: int) -> Any:
        barrier.wait()
        time.sleep(0.05 * index)
        return calls[index]()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(go, range(len(calls))))


def audited(action: str, run_id: str, outcome: str = "succeeded") -> list[dict[str, Any]]:
    return [r for r in audit_records() if r["action"] == action
            and r["correlationId"] == run_id and r["outcome"] == outcome]


def assert_one_rotation_per_run(world: RotationWorld, seeded: Seeded, receiver: Receiver,
                                rounds: int) -> None:
    done = [r for r in runs() if r["data"]["secret"] == seeded.secret]
    assert len(done) == rounds and all(r["status"] == "succeeded" for r in done), done
    primary, secondary = SLOTS[seeded.strategy]
    assert world.local.regenerations(seeded.resource) == (
        {secondary: 1} if rounds == 1 else {secondary: 1, primary: 1})
    promoted = [v for v in world.versions(seeded.secret)
                if (v.tags or {}).get("pitcrew-run")]
    assert len(promoted) == rounds, "a run promoted more than one version"
    for run in done:
        assert len(audited("rotation.prepare", run["run_id"])) == 1, "prepare audited twice"
        assert len(audited("rotation.promote", run["run_id"])) == 1
        assert len(audited("rotation.succeeded", run["run_id"])) == 1
        notices = [m for m in receiver.received if m.get("kind") == "rotation"
                   and run["run_id"] in json.dumps(m)]
        assert len(notices) == 1 and notices[0]["severity"] == "info", notices


def assert_answered(answers: list[Any]) -> None:
    """Neither caller is told of an error; one advanced the run (200 succeeded), the other
    joined it (202, in progress, with the run) or found it done (200)."""
    for answer in answers:
        assert answer.status in (200, 202), answer.body
        assert answer.body["dryRun"] is False and answer.body["run"]["id"]
    assert any(a.status == 200 and a.body["run"]["status"] == "succeeded" for a in answers), [
        a.body for a in answers]
    for answer in answers:
        if answer.status == 202:
            assert answer.body["inProgress"] is True, answer.body
            assert "another request is advancing it" in answer.body["message"]
            assert "another instance" not in answer.body["message"]
            assert answer.body["run"]["status"] in ("running", "succeeded")


@pytest.mark.parametrize("forced", [True, False])
def test_two_operators_rotate_the_same_secret_at_once_twice(
    world: RotationWorld, unique_name: str, operator: None, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch, forced: bool,
) -> None:
    seeded = world.seed_dual("cosmos-keys", unique_name)
    if not forced:
        world.write_policy(grace_hours=0)
    slow_steps(monkeypatch, 0.3)
    extra: list[dict[str, Any]] = (
        [{"force": True, "reason": "A"}, {"force": True, "reason": "B"}] if forced else [{}, {}])
    for rounds in (1, 2):
        answers = at_once(*[lambda e=e: rotate(seeded.secret, **e) for e in extra])
        assert_answered(answers)
        assert_one_rotation_per_run(world, seeded, receiver, rounds)
    if forced:
        # Both reasons were recorded; the run went on with the one written last.
        reasons = {r["details"]["reason"] for r in audit_records()
                   if r["action"] == "rotation.forced"}
        assert reasons == {"A", "B"}


def test_a_run_finished_by_the_timer_is_notified_once(
    world: RotationWorld, unique_name: str, operator: None, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The instance that held the run died mid-way; once its hold lapsed, two timer instances
    and an operator's request race to finish it: one does, once."""
    seeded = world.seed_dual("storage-keys", unique_name)
    crashed = slow_steps(monkeypatch, 0.2, crash_at="effect:test")
    with pytest.raises(Crash):
        rotate(seeded.secret, force=True, reason="first")
    assert crashed == ["effect:test"]
    (stalled,) = [r for r in runs() if r["data"]["secret"] == seeded.secret]
    assert stalled["status"] == "running" and stalled["step"] == "test"
    time_travel(monkeypatch, timedelta(minutes=5))  # the dead instance's hold lapsed
    timer, other_timer, request = at_once(
        rotation_api.advance_rotations, rotation_api.advance_rotations,
        lambda: rotate(seeded.secret, force=True, reason="again"))
    assert request.status in (200, 202), request.body
    assert timer["failed"] == other_timer["failed"] == 0, (timer, other_timer)
    assert_one_rotation_per_run(world, seeded, receiver, 1)
    run_id = stalled["run_id"]
    assert len(audited("rotation.test", run_id)) == 1


def test_two_plain_rotates_inside_the_grace_period_are_both_told_it_waits(
    world: RotationWorld, unique_name: str, operator: None, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: one printed waiting…, the other got a 503."""
    seeded = world.seed_dual("cosmos-keys", unique_name)
    assert rotate(seeded.secret).body["run"]["status"] == "succeeded"
    slow_steps(monkeypatch, 0.3)
    answers = at_once(lambda: rotate(seeded.secret), lambda: rotate(seeded.secret))
    for answer in answers:
        assert answer.status == 202, answer.body
        assert answer.body["run"]["status"] in ("running", "waiting"), answer.body
    assert any(a.body["run"]["status"] == "waiting" for a in answers)
    assert world.local.regenerations(seeded.resource) == {"secondaryMasterKey": 1}
    (waiting,) = [r for r in runs() if r["status"] == "waiting"
                  and r["data"]["secret"] == seeded.secret]
    assert len(audited("rotation.prepare", waiting["run_id"])) == 0
    assert len(audited("rotation.wait", waiting["run_id"], "skipped")) == 1
