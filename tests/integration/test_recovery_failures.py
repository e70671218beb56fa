"""Recovery readiness when Azure says no or cannot be reached (local Azure endpoint, Azurite):
a restore Azure refuses fails the drill at once with Azure's reason; a transient error keeps
the run for the resume timer with its reason visible; each run restores into a scratch account
of its own and never verifies or deletes an account that is not its own; one unreachable
registry does not stop the image purge of the others (and fails its audit, a dry run's too); a
dry run Azure fails answers the plan with Azure's reason; one broken drill does not stop the
drill timers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pitcrew_dev.azure_endpoint import LocalAzure, start_local_azure
from tests.integration.test_recovery import (
    ACR,
    GOOD_COSMOS,
    SEED,
    _alerts,
    _audit_of,
    _operator,
    _Slowed,
    policy_text,
    recovery_services,
)
from tests.receiver import Receiver

DOWN_ACR = "downacr.azurecr.io"
REFUSAL = "restore timestamp outside the restorable window"
COSMOS_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,42}[a-z0-9]$")  # 3-44, ARM's rule


def failures_policy(receiver_url: str) -> str:
    """The recovery test policy plus a second drill of the same source and a second registry
    (listed first) that cannot be reached."""
    text = policy_text(receiver_url)
    text = text.replace(
        "    - {name: legacy,",
        f"    - {{name: orders-copy, account: {GOOD_COSMOS}, rpo_minutes: 60, "
        "scratch_resource_group: rg-drills}\n    - {name: legacy,")
    return text.replace(
        "    registries:\n",
        f"    registries:\n      - login_server: {DOWN_ACR}\n        repositories: [api]\n")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LocalAzure]:
    with start_local_azure(config=SEED) as azure:
        yield azure


@pytest.fixture
def recovery(pitcrew_env: Path, endpoint: LocalAzure, receiver: Receiver,
             monkeypatch: pytest.MonkeyPatch) -> Any:
    return recovery_services(pitcrew_env, endpoint, monkeypatch, failures_policy(receiver.url))


def _accounts(endpoint: LocalAzure) -> dict[str, dict[str, Any]]:
    return {k.lower(): v for k, v in endpoint.recovery.describe()["cosmos"].items()}


def _to_restore(recovery: Any, rule: Any) -> Any:
    """A run of `rule` advanced (budget 0) until its restore was started: its scratch account
    exists (restoring or restored), not verified yet."""
    from pitcrew.housekeeping import drills

    run = drills.start(recovery, rule, "test")
    for _ in range(3):
        run = drills.advance(recovery, rule, run, budget_seconds=0)
        if run.data.get("restoreStartedAt"):
            break
    assert run.step in ("restore", "verify") and run.status == "running", run.data
    return run


# ------------------------------------------------------------------ Bug A: Azure refuses


def test_a_restore_azure_refuses_fails_the_drill_at_once_with_azures_reason(
        recovery: Any, endpoint: LocalAzure, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import HttpResponseError

    from pitcrew.housekeeping import recovery_api

    real = recovery.cosmos
    cosmos = _Slowed(real, 0.0, record=("start_restore", "delete"))
    monkeypatch.setattr(recovery, "cosmos", cosmos)

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise HttpResponseError(REFUSAL)

    def out_of_window(*args: Any, **kwargs: Any) -> Any:  # the endpoint's own 400
        return real.start_restore(*args, **{**kwargs, "at": datetime(2001, 1, 1, tzinfo=UTC)})

    failed: list[str] = []
    for refuse, reason in ((refused, REFUSAL), (out_of_window, "outside the restorable range")):
        monkeypatch.setattr(cosmos, "start_restore", refuse, raising=False)
        answer = recovery_api.run_drill(_operator(), "orders", b'{"dryRun": false}')
        assert answer.status == 200, answer.body
        assert answer.body["status"] == "failed" and answer.body["step"] == "done", answer.body
        assert any(reason in p for p in answer.body["runProblems"]), answer.body
        assert reason in json.dumps(answer.body["problems"])
        run = recovery.state.get_run("drill", answer.body["run"])
        assert run.status == "failed" and not run.data.get("leaseUntil")
        assert any(reason in p for p in run.data["problems"])
        assert run.data["scratch"].lower() not in _accounts(endpoint)
        assert run.data.get("scratchDeletedAt")  # the normal failure path: cleanup, then done
        failed.append(run.run_id)
        # Nothing is left for the resume timer.
        assert recovery_api.resume_drills() == []
    audit = _audit_of(recovery, "drill/orders", "recovery.drill")
    assert sorted(r.correlation_id for r in audit) == sorted(failed)
    assert all(r.outcome == "failed" for r in audit)
    alerts = _alerts(receiver, "drills")
    assert alerts and all(any("orders" in k for k in a["facts"]) for a in alerts)
    assert REFUSAL in json.dumps(alerts[0]["facts"])
    view = next(v for v in recovery_api.list_drills(_operator(), {}).body["drills"]
                if v["name"] == "orders")
    assert view["status"] == "failed" and view["lastResult"] == "failed"
    # Once Azure accepts it again, the next run behaves.
    monkeypatch.delattr(cosmos, "start_restore")
    answer = recovery_api.run_drill(_operator(), "orders", b'{"dryRun": false}')
    assert answer.status == 200 and answer.body["status"] == "succeeded", answer.body
    assert answer.body["run"] not in failed


def test_a_transient_restore_error_keeps_the_run_for_the_timer_with_its_reason_visible(
        recovery: Any, endpoint: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    from pitcrew.housekeeping import recovery_api

    cosmos = _Slowed(recovery.cosmos, 0.0, record=("start_restore",))
    monkeypatch.setattr(recovery, "cosmos", cosmos)
    errors = [ServiceRequestError("Failed to establish a new connection"),
              HttpResponseError("ServiceUnavailable: try again later")]
    errors[1].status_code = 503

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise errors.pop(0)

    def drill() -> dict[str, Any]:
        return next(v for v in recovery_api.list_drills(_operator(), {}).body["drills"]
                    if v["name"] == "orders")

    for round_ in (1, 2):  # a transient error, then it recovers; twice
        errors[:] = [ServiceRequestError("Failed to establish a new connection"),
                     HttpResponseError("ServiceUnavailable: try again later")]
        errors[1].status_code = 503
        monkeypatch.setattr(cosmos, "start_restore", unreachable, raising=False)
        answer = recovery_api.run_drill(_operator(), "orders", b'{"dryRun": false}')
        assert answer.status == 202, answer.body
        assert answer.body["status"] == "running" and answer.body["step"] == "restore"
        assert "Failed to establish a new connection" in json.dumps(answer.body["runProblems"])
        run_id = answer.body["run"]
        stored = recovery.state.get_run("drill", run_id)
        assert stored.status == "running" and not stored.data.get("leaseUntil")
        assert "Failed to establish" in json.dumps(stored.data["problems"])
        assert "Failed to establish" in json.dumps(drill()["problems"])  # GET /api/drills
        # The timer retries: the latest reason replaces the earlier one.
        assert recovery_api.resume_drills() == [run_id]
        stored = recovery.state.get_run("drill", run_id)
        assert stored.status == "running" and stored.step == "restore"
        assert "503" in json.dumps(stored.data["problems"])
        assert "Failed to establish" not in json.dumps(stored.data["problems"])
        assert "503" in json.dumps(drill()["problems"])
        # Azure answers again: the run goes on and succeeds; the retried errors are kept aside.
        monkeypatch.delattr(cosmos, "start_restore")
        assert recovery_api.resume_drills() == [run_id]
        done = recovery.state.get_run("drill", run_id)
        assert done.status == "succeeded" and done.data["problems"] == [], (round_, done.data)
        assert len(done.data["retried"]) == 2
        assert done.data["scratch"].lower() not in _accounts(endpoint)


def test_a_drill_that_never_gets_through_fails_after_max_hours_naming_the_last_error(
        recovery: Any, endpoint: LocalAzure, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ServiceRequestError

    from pitcrew.housekeeping import recovery_api

    cosmos = _Slowed(recovery.cosmos, 0.0)
    monkeypatch.setattr(recovery, "cosmos", cosmos)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ServiceRequestError("Failed to establish a new connection")

    monkeypatch.setattr(cosmos, "start_restore", unreachable, raising=False)
    answer = recovery_api.run_drill(_operator(), "orders", b'{"dryRun": false}')
    assert answer.status == 202, answer.body
    run = recovery.state.get_run("drill", answer.body["run"])
    run.data["startedAt"] = (datetime.now(UTC) - timedelta(hours=13)).isoformat()
    recovery.state.save_run(run)
    recovery_api.resume_drills()
    done = recovery.state.get_run("drill", run.run_id)
    assert done.status == "failed", done.data
    text = json.dumps(done.data["problems"])
    assert "longer than 12 h" in text and "Failed to establish a new connection" in text
    assert "Failed to establish" in json.dumps(_alerts(receiver, "drills")[-1]["facts"])


# ------------------------------------------------------------------ Bug B: scratch accounts


def test_two_drills_of_one_source_at_once_restore_into_scratch_accounts_of_their_own(
        recovery: Any, endpoint: LocalAzure) -> None:
    from pitcrew.housekeeping import drills, recovery_api

    rule = recovery.policy.drill("orders")
    seen: set[str] = set()
    for _ in range(2):  # twice in a row
        first = _to_restore(recovery, rule)  # restoring, within the same minute as the next
        scratch = first.data["scratch"]
        assert _accounts(endpoint)[scratch.lower()]["tags"] == {"pitcrew-drill": first.run_id}
        answer = recovery_api.run_drill(_operator(), "orders-copy", b'{"dryRun": false}')
        assert answer.status == 200 and answer.body["status"] == "succeeded", answer.body
        other = answer.body["scratch"]
        assert other.lower() != scratch.lower()
        # The first run's account was neither verified nor deleted by the other drill.
        assert scratch.lower() in _accounts(endpoint)
        assert drills.resume(recovery) == [first.run_id]
        done = recovery.state.get_run("drill", first.run_id)
        assert done.status == "succeeded" and done.data["problems"] == [], done.data
        for name in (scratch, other):
            assert COSMOS_NAME.match(name.rsplit("/", 1)[-1]), name
            assert name.lower() not in _accounts(endpoint)
        seen |= {scratch.lower(), other.lower()}
    assert len(seen) == 4


class _Tagged(_Slowed):
    """The Cosmos DB port with the optional `tags` read (the account's ARM tags)."""

    def __init__(self, inner: Any, endpoint: LocalAzure) -> None:
        super().__init__(inner, 0.0, record=("delete",))
        self._endpoint = endpoint

    def tags(self, account_id: str) -> dict[str, str] | None:
        found = _accounts(self._endpoint).get(account_id.lower())
        return None if found is None else dict(found["tags"])


@pytest.mark.parametrize("tag_port", [False, True])
def test_a_scratch_account_that_is_not_the_runs_own_is_never_verified_or_deleted(
        recovery: Any, endpoint: LocalAzure, monkeypatch: pytest.MonkeyPatch,
        tag_port: bool) -> None:
    from pitcrew.housekeeping import drills, recovery_api

    cosmos = (_Tagged(recovery.cosmos, endpoint) if tag_port
              else _Slowed(recovery.cosmos, 0.0, record=("delete",)))
    monkeypatch.setattr(recovery, "cosmos", cosmos)
    owner = _to_restore(recovery, recovery.policy.drill("orders"))
    theirs = owner.data["scratch"]
    rule = recovery.policy.drill("orders-copy")
    for _ in range(2):  # twice in a row: the next run of the drill is unaffected
        run = drills.start(recovery, rule, "test")
        # A run whose saved scratch account is another run's (a name taken before this fix
        # was unique per run, or a run that crashed before its restore was asked for).
        run.data.update({"scratch": theirs, "restoreAt": owner.data["restoreAt"],
                         "mode": "restore"})
        if tag_port:  # only the tag can tell: the run had asked for its restore
            run.data["restoreStartedAt"] = datetime.now(UTC).isoformat()
        run.step = "restore"
        run = recovery.state.save_run(run)
        done = drills.advance(recovery, rule, run)
        assert done.status == "failed", done.data
        assert any("not this run's" in p for p in done.data["problems"]), done.data
        assert not done.data.get("scratchDeletedAt") and not done.data.get("verifiedAt")
        assert theirs.lower() in _accounts(endpoint)  # left alone
        assert not [c for c in cosmos.calls if c[0] == "delete" and c[1][0] == theirs]
        answer = recovery_api.run_drill(_operator(), "orders-copy", b'{"dryRun": false}')
        assert answer.status == 200 and answer.body["status"] == "succeeded", answer.body
    # The owner still finishes its own drill.
    assert owner.run_id in drills.resume(recovery)
    finished = recovery.state.get_run("drill", owner.run_id)
    assert finished.status == "succeeded", finished.data
    assert theirs.lower() not in _accounts(endpoint)


# ------------------------------------------------------------------ Bug C: image purge


class _Unreachable(_Slowed):
    """The registry port with one registry unreachable (DNS, firewall, outage)."""

    def __getattr__(self, name: str) -> Any:
        from azure.core.exceptions import ServiceRequestError

        call = super().__getattr__(name)

        def guarded(login_server: str, *args: Any, **kwargs: Any) -> Any:
            if login_server == DOWN_ACR:
                raise ServiceRequestError("Failed to resolve 'downacr.azurecr.io'")
            return call(login_server, *args, **kwargs)

        return guarded


def test_an_unreachable_registry_is_a_failing_result_and_the_others_are_still_purged(
        recovery: Any, endpoint: LocalAzure, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.housekeeping import recovery_api

    monkeypatch.setattr(recovery, "registry", _Unreachable(recovery.registry, 0.0))
    before = len(endpoint.recovery.describe()["deletedImages"])
    answer = recovery_api.purge_images(_operator(), b'{"dryRun": false}')
    assert answer.status == 200, answer.body
    by_registry = {r["registry"]: r for r in answer.body["registries"]}
    assert set(by_registry) == {DOWN_ACR, ACR}
    assert "ServiceRequestError" in json.dumps(by_registry[DOWN_ACR]["problems"])
    assert by_registry[ACR]["problems"] == [] and by_registry[ACR]["count"] == 2
    assert len(endpoint.recovery.describe()["deletedImages"]) == before + 2
    alerts = _alerts(receiver, "image-purge")
    assert len(alerts) == 1
    facts = json.dumps(alerts[0]["facts"])
    assert "downacr" in facts and "ServiceRequestError" in facts and ACR not in facts
    # The timer: the same, without raising; the failure is alerted, audited and recorded.
    results = {r["registry"]: r for r in recovery_api.run_image_purge()}
    assert "ServiceRequestError" in json.dumps(results[DOWN_ACR]["problems"])
    assert results[ACR]["problems"] == [] and results[ACR]["count"] == 0  # purged already
    audit = _audit_of(recovery, f"registry/{DOWN_ACR}", "recovery.images.purge")
    assert [r.outcome for r in audit] == ["failed", "failed"]
    runs = [r for r in recovery.state.list_runs("image-purge")
            if r.data.get("registry") == DOWN_ACR]
    assert len(runs) == 2 and all(r.status == "failed" for r in runs)
    checks = _audit_of(recovery, "check/image-purge", "recovery.image-purge")
    assert len(checks) == 2 and all(r.outcome == "failed" for r in checks)
    # The same day, the same failing registry: one grouped alert, not two.
    assert len(_alerts(receiver, "image-purge")) == 1
    # A dry run says the same, with a 200.
    plan = recovery_api.purge_images(_operator(), b"{}")
    assert plan.status == 200, plan.body
    assert "ServiceRequestError" in json.dumps(plan.body["registries"][0]["problems"])


# ------------------------------------------------------------------ a dry run Azure fails


def test_a_dry_run_whose_azure_call_fails_answers_the_plan_with_azures_reason(
        recovery: Any, endpoint: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    from pitcrew.housekeeping import recovery_api

    cosmos = _Slowed(recovery.cosmos, 0.0)
    monkeypatch.setattr(recovery, "cosmos", cosmos)
    refused = HttpResponseError("AuthorizationFailed: the client has no permission")
    refused.status_code = 403

    def failing(exc: Exception) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise exc
        return call

    before = endpoint.recovery.describe()
    cases = (("backup", refused, "reading the source's backup policy", "403", False),
             ("restorable", ServiceRequestError("Failed to establish a new connection"),
              "reading the source's restorable account", "Failed to establish", True))
    for call, exc, what, reason, transient in cases:
        monkeypatch.setattr(cosmos, call, failing(exc), raising=False)
        for body in (b"", b'{"dryRun": true}'):  # the default and an explicit dry run; twice
            answer = recovery_api.run_drill(_operator(), "orders", body)
            assert answer.status == 200, answer.body
            assert answer.body["dryRun"] is True and answer.body["mode"] == "unknown"
            (problem,) = answer.body["problems"]
            assert what in problem and reason in problem, problem
            error = answer.body["azureError"]
            assert error["call"] == call and reason in error["reason"], error
            assert error["transient"] is transient
            assert answer.body["scratchAccount"] is None
        monkeypatch.delattr(cosmos, call)
    assert endpoint.recovery.describe() == before
    assert list(recovery.state.list_runs("drill")) == []
    # Azure answers again: the plan is clean.
    answer = recovery_api.run_drill(_operator(), "orders", b"")
    assert answer.status == 200 and answer.body["mode"] == "restore", answer.body
    assert answer.body["problems"] == [] and answer.body["azureError"] is None


# ------------------------------------------------------------------ timers: each on its own


SECRET = "AccountKey=c2VjcmV0LWtleQ=="


class _BrokenCreate:
    """The state store refusing to create drill runs (a storage outage), the rest as it is."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def create_run(self, run: Any) -> Any:
        from azure.core.exceptions import HttpResponseError

        if run.kind != "drill":
            return self._inner.create_run(run)
        error = HttpResponseError(f"ServerBusy ({SECRET})")
        error.status_code = 503
        raise error


def _errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelname == "ERROR" and r.name == "pitcrew.housekeeping.drills"]


def test_when_every_drill_fails_to_start_each_is_audited_and_logged_then_the_timer_raises(
        recovery: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from pitcrew.housekeeping import recovery_api

    caplog.set_level(logging.WARNING)
    names = [rule.name for rule in recovery.policy.drills]
    # Every drill fails to start (its run cannot be created): each is tried, audited and
    # logged, then the timer raises so the platform shows a failed run; twice.
    monkeypatch.setattr(recovery, "state", _BrokenCreate(recovery.state))
    for round_ in (1, 2):
        with pytest.raises(RuntimeError, match="every drill it tried failed"):
            recovery_api.run_due_drills()
        for name in names:
            audit = _audit_of(recovery, f"drill/{name}", "recovery.drill.error")
            assert len(audit) == round_ and audit[0].outcome == "failed", name
            assert audit[0].details["timer"] == "run_due_drills"
            assert audit[0].details["error"] == "HttpResponseError 503"
            assert any(name in m and "run_due_drills" in m for m in _errors_logged(caplog))
    assert SECRET not in caplog.text


def test_one_broken_drill_does_not_stop_the_timers_and_is_logged_kept_and_audited(
        recovery: Any, endpoint: LocalAzure, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from pitcrew.housekeeping import drills, recovery_api

    caplog.set_level(logging.WARNING)
    names = [rule.name for rule in recovery.policy.drills]
    # One drill's run breaks in its verify step (not an Azure answer: a bug, say): the
    # others are started and advanced all the same.
    real_verify = drills.verify

    def verify(svc: Any, rule: Any, scratch: str, at: datetime) -> list[str]:
        if rule.name == "orders":
            raise ValueError(f"cannot compare counts ({SECRET})")
        return real_verify(svc, rule, scratch, at)

    monkeypatch.setattr(drills, "verify", verify)
    started = recovery_api.run_due_drills()
    runs = {r.data["drill"]: r for r in recovery.state.list_runs("drill")}
    assert set(runs) == set(names)
    broken = runs["orders"]
    assert sorted(started) == sorted(r.run_id for n, r in runs.items() if n != "orders")
    assert runs["orders-copy"].status == "succeeded"
    assert runs["lossy"].status == "failed"  # its own verification's result
    assert runs["legacy"].status == "waiting-manual"
    assert broken.status == "running" and broken.step == "verify"
    assert not broken.data.get("leaseUntil")
    assert broken.data["problems"] == ["retrying after an error at step verify: ValueError"]
    assert any("orders" in m and broken.run_id in m for m in _errors_logged(caplog))
    view = next(v for v in recovery_api.list_drills(_operator(), {}).body["drills"]
                if v["name"] == "orders")
    assert "retrying after an error at step verify: ValueError" in json.dumps(view["problems"])
    assert "retrying after an error" in json.dumps(_alerts(receiver, "drills")[-1]["facts"])

    # The resume timer: the broken run alone fails (the timer raises, after recording it);
    # with another run to advance, that one goes on and the timer does not raise; twice each.
    for _ in range(2):
        with pytest.raises(RuntimeError, match=broken.run_id) as raised:
            recovery_api.resume_drills()
        assert raised.typename == "DrillTimerFailed"
    for _ in range(2):
        other = _to_restore(recovery, recovery.policy.drill("orders-copy"))
        assert recovery_api.resume_drills() == [other.run_id]
        assert recovery.state.get_run("drill", other.run_id).status == "succeeded"
    kept = recovery.state.get_run("drill", broken.run_id)
    assert kept.status == "running" and kept.step == "verify", kept.data
    assert kept.data["problems"] == ["retrying after an error at step verify: ValueError"]
    assert [r["call"] for r in kept.data["retried"]] == ["timer"] * 5
    audit = _audit_of(recovery, "drill/orders", "recovery.drill.error")
    mine = [r for r in audit if r.correlation_id == broken.run_id]
    assert [r.details["timer"] for r in sorted(mine, key=lambda r: r.time)] == \
        ["run_due_drills"] + ["resume_drills"] * 4
    assert all(r.outcome == "failed" and r.details["step"] == "verify" for r in mine)
    # No secret anywhere: not in the log, the run, the audit or the alerts.
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps(kept.data)
    assert SECRET not in json.dumps([r.details for r in audit])
    assert SECRET not in json.dumps(receiver.received)
    # Fixed: the next resume finishes the run; the kept error is gone (it stays in retried).
    monkeypatch.setattr(drills, "verify", real_verify)
    assert recovery_api.resume_drills() == [broken.run_id]
    done = recovery.state.get_run("drill", broken.run_id)
    assert done.status == "succeeded" and done.data["problems"] == [], done.data
    assert len(done.data["retried"]) == 5
    assert done.data["scratch"].lower() not in _accounts(endpoint)


def test_a_broken_run_past_max_hours_fails_naming_the_last_error(
        recovery: Any, endpoint: LocalAzure, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.housekeeping import drills, recovery_api

    def verify(*args: Any, **kwargs: Any) -> list[str]:
        raise ValueError("cannot compare counts")

    monkeypatch.setattr(drills, "verify", verify)
    run = _to_restore(recovery, recovery.policy.drill("orders"))
    with pytest.raises(RuntimeError, match="every drill it tried failed"):
        recovery_api.resume_drills()
    # The resume timer's failure is alerted at once (the drills check), not the next day.
    assert "retrying after an error at step verify: ValueError" in json.dumps(
        _alerts(receiver, "drills")[-1]["facts"])
    stored = recovery.state.get_run("drill", run.run_id)
    stored.data["startedAt"] = (datetime.now(UTC) - timedelta(hours=13)).isoformat()
    recovery.state.save_run(stored)
    assert recovery_api.resume_drills() == [run.run_id]
    done = recovery.state.get_run("drill", run.run_id)
    assert done.status == "failed", done.data
    assert "the last error before giving up, at step verify: ValueError" in done.data["problems"]
    assert done.data["scratch"].lower() not in _accounts(endpoint)


# ------------------------------------------------------------------ image purge: dry run audit


def test_a_dry_run_purge_of_an_unreachable_registry_is_audited_failed(
        recovery: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.housekeeping import recovery_api

    monkeypatch.setattr(recovery, "registry", _Unreachable(recovery.registry, 0.0))
    for round_ in (1, 2):
        plan = recovery_api.purge_images(_operator(), b"{}")
        assert plan.status == 200, plan.body
        down = _audit_of(recovery, f"registry/{DOWN_ACR}", "recovery.images.purge")
        assert [r.outcome for r in down] == ["failed"] * round_
        assert "ServiceRequestError" in json.dumps(down[0].details["problems"])
        clean = _audit_of(recovery, f"registry/{ACR}", "recovery.images.purge")
        assert [r.outcome for r in clean] == ["planned"] * round_
    assert list(recovery.state.list_runs("image-purge")) == []  # a dry run records no run
