"""Recovery readiness against the local Azure endpoint (real azure-mgmt-cosmosdb, azure-mgmt-
storage, azure-monitor-query and azure-containerregistry clients) and Azurite: backup checks,
restore drills (dry run, real run, resumed after a crash), the verified image purge."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pitcrew.auth import encode_principal
from pitcrew_dev.azure_endpoint import LocalAzure, start_local_azure
from tests.receiver import Receiver

SUB = "00000000-0000-0000-0000-000000000000"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers"
GOOD_COSMOS = f"{RG}/Microsoft.DocumentDB/databaseAccounts/orders-good"
PERIODIC_COSMOS = f"{RG}/Microsoft.DocumentDB/databaseAccounts/legacy-periodic"
LOSSY_COSMOS = f"{RG}/Microsoft.DocumentDB/databaseAccounts/lossy"
GOOD_STORAGE = f"{RG}/Microsoft.Storage/storageAccounts/goodstate"
BAD_STORAGE = f"{RG}/Microsoft.Storage/storageAccounts/badstate"
WORKSPACE = "11111111-2222-3333-4444-555555555555"
ACR = "acrdemo.azurecr.io"

SEED: dict[str, Any] = {"recovery": {
    "cosmos": [
        {"id": GOOD_COSMOS, "databases": {"shop": {"orders": 1000, "carts": 40}}},
        {"id": PERIODIC_COSMOS, "backup": {"type": "Periodic", "intervalMinutes": 1440,
                                           "retentionHours": 8},
         "databases": {"app": {"items": 5}}},
        {"id": LOSSY_COSMOS, "databases": {"app": {"items": 100}}, "restoredFraction": 0.5},
    ],
    "storage": [
        {"id": GOOD_STORAGE, "softDeleteDays": 14, "containerSoftDeleteDays": 14,
         "versioning": True, "restoreDays": 13},
        {"id": BAD_STORAGE, "softDeleteDays": 2, "versioning": False},
    ],
    "workspaces": {WORKSPACE: [
        {"BackupItemUniqueId": "vm-ok", "JobStatus": "Completed", "JobStartDateTime": "-3h"},
        {"BackupItemUniqueId": "vm-failed", "JobStatus": "Completed",
         "JobStartDateTime": "-27h"},
        {"BackupItemUniqueId": "vm-failed", "JobStatus": "Failed", "JobStartDateTime": "-2h",
         "JobFailureCode": "UserErrorVmNotFound"},
    ]},
    "registries": {ACR: {"api": [
        {"tags": ["v1.0.0"], "ageDays": 200, "size": 100},
        {"tags": ["old-1"], "ageDays": 90, "size": 1000},
        {"tags": ["old-2"], "ageDays": 80, "size": 2000},
        {"tags": ["running"], "ageDays": 70, "size": 3000},
        {"tags": ["locked-1"], "ageDays": 60, "size": 4000, "locked": True},
        {"tags": ["new-1"], "ageDays": 1},
        {"tags": ["new-2"], "ageDays": 0},
    ]}},
}}


def policy_text(receiver_url: str, *, in_use: str = "api:running") -> str:
    return f"""version: 1
channels:
  hook: {{type: webhook, url: "{receiver_url}", timeout_seconds: 2}}
routes:
  - name: all
    channels: [hook]
recovery:
  backups:
    cosmos:
      - {{account: {GOOD_COSMOS}, continuous: true, retention_hours: 168}}
      - {{account: {PERIODIC_COSMOS}, continuous: false, rpo_minutes: 240,
          retention_hours: 48}}
    storage:
      - {{account: {GOOD_STORAGE}, soft_delete_days: 14, point_in_time_restore_days: 13}}
      - {{account: {BAD_STORAGE}, soft_delete_days: 7}}
    jobs:
      workspace_id: {WORKSPACE}
      items:
        - {{item: vm-ok, rpo_hours: 24}}
        - {{item: vm-failed, rpo_hours: 24}}
  drills:
    - {{name: orders, account: {GOOD_COSMOS}, rpo_minutes: 60, scratch_resource_group: rg-drills}}
    - {{name: legacy, account: {PERIODIC_COSMOS}, owner: team-data}}
    - {{name: lossy, account: {LOSSY_COSMOS}}}
  images:
    registries:
      - login_server: {ACR}
        repositories: [api]
        keep_last: 2
        older_than_days: 30
        protect: ["^v\\\\d+\\\\.\\\\d+\\\\.\\\\d+$"]
        in_use: ["{in_use}"]
"""


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LocalAzure]:
    with start_local_azure(config=SEED) as azure:
        yield azure


def recovery_services(pitcrew_env: Path, endpoint: LocalAzure,
                      monkeypatch: pytest.MonkeyPatch, policy: str) -> Any:
    """The app's recovery services against the local endpoint, under `policy`."""
    from pitcrew.bootstrap import get_services, reset_services

    env = endpoint.environment()
    for name in ("PITCREW_LOCAL_AZURE_URL", "PITCREW_LOCAL_AZURE_CA"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    pitcrew_env.write_text(policy)
    reset_services()
    return get_services().recovery


@pytest.fixture
def recovery(pitcrew_env: Path, endpoint: LocalAzure, receiver: Receiver,
             monkeypatch: pytest.MonkeyPatch) -> Any:
    return recovery_services(pitcrew_env, endpoint, monkeypatch, policy_text(receiver.url))


def _operator() -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": encode_principal("ops@example.com", ["Operator"])}


def _alerts(receiver: Receiver, check: str) -> list[dict[str, Any]]:
    return [n for n in receiver.received if n["dedupKey"] == f"recovery:{check}"]


def test_each_backup_check_sends_one_grouped_alert_for_its_failing_resources(
        recovery: Any, receiver: Receiver) -> None:
    from pitcrew.housekeeping import recovery_api

    assert recovery_api.run_backup_checks() == {
        "cosmos-backup": False, "storage-protection": False, "backup-jobs": False}
    for check, failing, healthy in (("cosmos-backup", "legacy-periodic", "orders-good"),
                                    ("storage-protection", "badstate", "goodstate"),
                                    ("backup-jobs", "vm-failed", "vm-ok")):
        alerts = _alerts(receiver, check)
        assert len(alerts) == 1, check
        assert any(failing in key for key in alerts[0]["facts"]), alerts[0]
        assert not any(healthy in key for key in alerts[0]["facts"]), alerts[0]
    facts = json.dumps([a["facts"] for a in receiver.received])
    assert "backup every 1440 min" in facts and "blob versioning is off" in facts
    assert "UserErrorVmNotFound" in facts
    # The same day, the same findings: a retried timer notifies nobody twice.
    recovery_api.run_backup_checks()
    assert len([n for n in receiver.received if n["kind"] == "recovery"]) == 3
    page = recovery_api.list_backups(_operator(), {"limit": "2"})
    assert page.status == 200 and len(page.body["checks"]) == 2 and page.body["continuation"]


def test_the_backup_and_drill_lists_filter_and_refuse_bad_filters(
        recovery: Any, receiver: Receiver) -> None:
    from pitcrew.housekeeping import recovery_api

    recovery_api.run_backup_checks()
    failing = recovery_api.list_backups(_operator(), {"failing": "true"}).body["checks"]
    assert {c["check"] for c in failing} == {"cosmos-backup", "storage-protection",
                                             "backup-jobs"}
    for check in failing:  # only the failing resources of each, counted
        assert check["resources"] and not any(r["ok"] for r in check["resources"])
        assert check["resourceCount"] == len(check["resources"])
    one = recovery_api.list_backups(_operator(), {"check": "storage-protection"}).body["checks"]
    assert [c["check"] for c in one] == ["storage-protection"]
    assert {r["ok"] for r in one[0]["resources"]} == {True, False}
    # One resource by its id, in any case (ARM ids are case-insensitive).
    by_id = recovery_api.list_backups(_operator(), {"resource": BAD_STORAGE.upper()})
    ((check,),) = [c["resources"] for c in by_id.body["checks"]]
    assert check["resource"].lower() == BAD_STORAGE.lower() and not check["ok"]
    assert recovery_api.list_backups(_operator(), {"check": "nothing"}).body["checks"] == []

    assert {v["name"] for v in recovery_api.list_drills(
        _operator(), {"status": "never-run"}).body["drills"]} == {"orders", "legacy", "lossy"}
    assert recovery_api.list_drills(_operator(), {"status": "succeeded"}).body["drills"] == []
    assert [v["name"] for v in recovery_api.list_drills(
        _operator(), {"account": PERIODIC_COSMOS}).body["drills"]] == ["legacy"]
    overdue = recovery_api.list_drills(_operator(), {"failing": "yes"}).body["drills"]
    assert len(overdue) == 3 and all(v["problems"] for v in overdue)  # never succeeded

    for call, query, field in (
            (recovery_api.list_backups, {"failing": "maybe"}, "failing"),
            (recovery_api.list_backups, {"resource": "x" * 2000}, "resource"),
            (recovery_api.list_drills, {"status": "done"}, "status"),
            (recovery_api.list_drills, {"failing": "\u0000"}, "failing"),
            (recovery_api.list_drills, {"limit": "0"}, "limit")):
        answer = call(_operator(), query)
        assert answer.status == 400 and answer.body["field"] == field, (query, answer.body)


def test_a_check_lists_at_most_a_hundred_resources_and_says_how_many(recovery: Any) -> None:
    from pitcrew.housekeeping import backups

    result = {"check": "c", "checkedAt": "2026-12-03T00:00:00+00:00", "ok": False,
              "resources": [{"resource": f"/r/{n}", "ok": n % 2 == 0, "problems": []}
                            for n in range(250)]}
    view = backups.result_view(result)
    assert view is not None
    assert len(view["resources"]) == backups.MAX_LISTED_RESOURCES == 100
    assert view["resourceCount"] == 250
    failing = backups.result_view(result, failing=True)
    assert failing is not None and failing["resourceCount"] == 125
    assert backups.result_view({**result, "ok": True, "resources": []}, failing=True) is None


def test_a_drill_dry_run_changes_nothing(recovery: Any, endpoint: LocalAzure) -> None:
    from pitcrew.housekeeping import recovery_api

    before = endpoint.recovery.describe()
    answer = recovery_api.run_drill(_operator(), "orders", b"")
    assert answer.status == 200, answer.body
    assert answer.body["dryRun"] is True and answer.body["problems"] == []
    assert "/resourceGroups/rg-drills/" in answer.body["scratchAccount"]
    assert endpoint.recovery.describe() == before
    assert list(recovery.state.list_runs("drill")) == []


def test_a_real_drill_restores_verifies_and_deletes_the_scratch_account(
        recovery: Any, endpoint: LocalAzure, receiver: Receiver) -> None:
    from pitcrew.housekeeping import recovery_api

    answer = recovery_api.run_drill(_operator(), "orders", b'{"dryRun": false}')
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "succeeded", answer.body
    scratch = answer.body["scratch"]
    assert scratch.endswith(answer.body["scratch"].rsplit("/", 1)[-1])
    assert scratch.lower() not in {k.lower() for k in endpoint.recovery.describe()["cosmos"]}
    assert answer.body["restoreSeconds"] >= 0 and answer.body["rtoSeconds"] >= 0
    audit = [r for r in recovery.audit.query(since=_ago(), until=_later(),
                                             target="drill/orders")
             if r.action == "recovery.drill"]
    assert len(audit) == 1 and audit[0].outcome == "succeeded"
    assert audit[0].details["rtoSeconds"] == answer.body["rtoSeconds"]
    views = recovery_api.list_drills(_operator(), {}).body["drills"]
    orders = next(v for v in views if v["name"] == "orders")
    assert orders["lastResult"] == "succeeded" and orders["rtoSeconds"] is not None


def test_a_drill_resumed_after_a_crash_cleans_up_and_a_failed_drill_alerts(
        recovery: Any, endpoint: LocalAzure, receiver: Receiver) -> None:
    from pitcrew.housekeeping import drills

    rule = recovery.policy.drill("lossy")
    run = drills.start(recovery, rule, "test")
    # "Crash" right after the restore was started: the scratch account exists, Creating.
    run = drills.advance(recovery, rule, run, budget_seconds=0)
    while run.step == "window":
        run = drills.advance(recovery, rule, run, budget_seconds=0)
    assert run.step == "restore" and run.data["scratch"]
    again = drills.start(recovery, rule, "test")  # one active run per drill
    assert again.run_id == run.run_id
    drills.resume(recovery)
    done = recovery.state.get_run("drill", run.run_id)
    assert done.status == "failed" and any("items restored" in p for p in done.data["problems"])
    assert done.data["scratch"].lower() not in {
        k.lower() for k in endpoint.recovery.describe()["cosmos"]}
    alerts = _alerts(receiver, "drills")
    assert len(alerts) == 1 and any("lossy" in k for k in alerts[0]["facts"])
    assert not any(k.endswith("orders") and "failed" in v for k, v in alerts[0]["facts"].items())


def test_a_periodic_drill_is_a_manual_step_with_owner_due_date_and_case_text(
        recovery: Any) -> None:
    from pitcrew.housekeeping import recovery_api

    answer = recovery_api.run_drill(_operator(), "legacy", b'{"dryRun": false}')
    assert answer.status == 202 and answer.body["status"] == "waiting-manual"
    assert answer.body["manual"]["owner"] == "team-data"
    assert "legacy-periodic" in answer.body["manual"]["supportCase"]
    closed = recovery_api.run_drill(_operator(), "legacy",
                                    b'{"manualOutcome": "passed", "rtoMinutes": 90}')
    assert closed.status == 200 and closed.body["lastResult"] == "succeeded"
    assert closed.body["rtoSeconds"] == 5400


def test_image_purge_dry_run_then_run_keeps_in_use_locked_and_protected(
        recovery: Any, endpoint: LocalAzure, receiver: Receiver) -> None:
    from pitcrew.housekeeping import recovery_api

    plan = recovery_api.purge_images(_operator(), b"{}")
    assert plan.status == 200, plan.body
    registry = plan.body["registries"][0]
    assert registry["dryRun"] is True
    assert sorted(t for i in registry["images"] for t in i["tags"]) == ["old-1", "old-2"]
    assert registry["bytes"] == 3000 and endpoint.recovery.describe()["deletedImages"] == []
    assert registry["kept"] == {"newest": 2, "in-use": 1, "locked": 1, "protected-tag": 1}
    done = recovery_api.purge_images(_operator(), b'{"dryRun": false}').body["registries"][0]
    assert done["count"] == 2 and done["bytes"] == 3000 and done["problems"] == []
    assert len(endpoint.recovery.describe()["deletedImages"]) == 2
    assert _alerts(receiver, "image-purge") == []


def test_image_purge_alerts_once_when_an_in_use_image_does_not_resolve(
        recovery: Any, receiver: Receiver, pitcrew_env: Path) -> None:
    from pitcrew.bootstrap import reset_services
    from pitcrew.housekeeping import recovery_api

    pitcrew_env.write_text(policy_text(receiver.url, in_use="api:gone-tag"))
    reset_services()
    recovery_api.run_image_purge()
    alerts = _alerts(receiver, "image-purge")
    assert len(alerts) == 1 and "gone-tag" in json.dumps(alerts[0]["facts"])


@pytest.mark.parametrize(("name", "body", "field"), [
    ("orders", b'{"dryRun": "maybe"}', "dryRun"),
    ("orders", b'{"dryRun": "no"}', "dryRun"),
    ("orders", b'{"dryRun": 0}', "dryRun"),
    ("nope", b"{}", "name"),
    ("Bad Name", b"{}", "name"),
    ("orders", b"[1]", "body"),
])
def test_bad_drill_requests_are_400_naming_the_field(recovery: Any, name: str, body: bytes,
                                                     field: str) -> None:
    from pitcrew.housekeeping import recovery_api

    answer = recovery_api.run_drill(_operator(), name, body)
    assert answer.status == 400, answer.body
    assert field in answer.body["field"]


def _ago() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(hours=1)


def _later() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(hours=1)


def test_the_demo_seed_has_one_failing_case_of_each_check(
        pitcrew_env: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.bootstrap import reset_services
    from pitcrew.housekeeping import recovery_api

    root = Path(__file__).resolve().parents[2] / "examples"
    policy = (root / "pitcrew.demo.yaml").read_text().replace(
        "http://127.0.0.1:7071/_pitcrew/inbox", receiver.url)
    pitcrew_env.write_text(policy)
    with start_local_azure(config=root / "local-azure.demo.json") as azure:
        env = azure.environment()
        for name in ("PITCREW_LOCAL_AZURE_URL", "PITCREW_LOCAL_AZURE_CA"):
            monkeypatch.setenv(name, env[name])
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
        reset_services()
        recovery_api.run_backup_checks()
        recovery_api.run_image_purge()
        assert recovery_api.run_drill(_operator(), "orders", b"").body["problems"] == []
        # The demo policy groups alerts (group_wait 5 s): flush the groups as the timer would.
        from pitcrew.bootstrap import get_services

        get_services().alerting.sweep(now=datetime.now(UTC) + timedelta(minutes=1))
    checks = sorted(n["labels"]["check"] for n in receiver.received if n["kind"] == "recovery")
    assert checks == ["backup-jobs", "cosmos-backup", "image-purge", "storage-protection"]
    facts = json.dumps([n["facts"] for n in receiver.received])
    for healthy in ("sample-orders", "samplestate", "vm-web-1"):
        assert healthy not in facts


# ------------------------------------------------------------------ concurrency


class _Slowed:
    """A port with every call slowed down (as a real Azure call is), so that two callers
    overlap the way they do on a real host; the calls named in `record` are remembered."""

    def __init__(self, inner: Any, delay: float, record: tuple[str, ...] = ()) -> None:
        self._inner = inner
        self._delay = delay
        self._record = record
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def slowed(*args: Any, **kwargs: Any) -> Any:
            time.sleep(self._delay)
            if name in self._record:
                with self._lock:
                    self.calls.append((name, args, kwargs))
            return attr(*args, **kwargs)

        return slowed


def _together(call: Any, *, offset: float = 0.0) -> list[Any]:
    """`call` in two threads, the second `offset` seconds after the first (or both at once):
    what each answered, or the exception it raised."""
    barrier = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def worker(index: int) -> None:
        barrier.wait()
        if index and offset:
            time.sleep(offset)
        try:
            answers[index] = call()
        except Exception as exc:  # the test asserts there is none
            answers[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def _audit_of(recovery: Any, target: str, action: str) -> list[Any]:
    return [r for r in recovery.audit.query(since=_ago(), until=_later(), target=target)
            if r.action == action]


@pytest.mark.parametrize("offset", [0.0, 0.4, 0.7])
def test_two_concurrent_drill_runs_advance_one_run_with_one_scratch_account(
        recovery: Any, endpoint: LocalAzure, monkeypatch: pytest.MonkeyPatch,
        offset: float) -> None:
    from pitcrew.housekeeping import recovery_api

    cosmos = _Slowed(recovery.cosmos, 0.15, record=("start_restore", "delete"))
    monkeypatch.setattr(recovery, "cosmos", cosmos)
    seen: list[str] = []
    for _ in range(2):  # twice in a row
        answers = _together(lambda: recovery_api.run_drill(_operator(), "orders",
                                                           b'{"dryRun": false}'),
                            offset=offset)
        for answer in answers:
            assert not isinstance(answer, Exception), answer
            assert answer.status in (200, 202), answer.body
        runs = {a.body["run"] for a in answers}
        assert len(runs) == 1, [a.body for a in answers]  # one run for both callers
        finished = [a for a in answers if a.status == 200]
        assert finished and all(a.body["status"] == "succeeded" for a in finished)
        busy = [a for a in answers if a.status == 202]
        for answer in busy:  # the one that found the run leased says so
            assert answer.body["status"] == "running"
            assert answer.body["message"] == f"already running: run {answer.body['run']}"
        seen += runs
    assert len(set(seen)) == 2
    state = {r.run_id: r for r in recovery.state.list_runs("drill")
             if r.data.get("drill") == "orders"}
    assert set(state) == set(seen)
    assert all(r.status == "succeeded" and r.data["problems"] == [] for r in state.values())
    assert all(not r.data.get("leaseUntil") for r in state.values())
    # Exactly one restore (one scratch account) per run, each deleted, none left behind.
    restored = [kwargs["tags"]["pitcrew-drill"] for name, _, kwargs in cosmos.calls
                if name == "start_restore"]
    assert sorted(restored) == sorted(seen)
    left = {k.lower() for k in endpoint.recovery.describe()["cosmos"]}
    assert not any(r.data["scratch"].lower() in left for r in state.values())
    # The audit trail: one start and one result per run, not one per caller.
    for action in ("recovery.drill.start", "recovery.drill"):
        records = _audit_of(recovery, "drill/orders", action)
        assert sorted(r.correlation_id for r in records) == sorted(seen), action


class _Crash(BaseException):
    """The worker's process dies: nothing of it runs any more (no except, no finally)."""


def test_a_crashed_drill_worker_holds_its_run_until_the_lease_lapses_then_it_is_taken_over(
        recovery: Any, endpoint: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.housekeeping import drills, recovery_api

    rule = recovery.policy.drill("orders")
    real = recovery.cosmos
    cosmos = _Slowed(real, 0.0, record=("start_restore", "delete"))

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise _Crash

    monkeypatch.setattr(recovery, "cosmos", cosmos)
    run = drills.start(recovery, rule, "test")
    # The worker dies in the verify step, after the restore finished.
    monkeypatch.setattr(cosmos, "containers", crash, raising=False)
    with pytest.raises(_Crash):
        drills.advance(recovery, rule, run)
    monkeypatch.delattr(cosmos, "containers")
    held = recovery.state.get_run("drill", run.run_id)
    assert held.status == "running" and held.step == "verify" and held.data["leaseUntil"]
    # While its lease is live nobody else advances the run: the timer skips it, a caller is
    # told it is running.
    assert drills.resume(recovery) == []
    answer = recovery_api.run_drill(_operator(), "orders", b'{"dryRun": false}')
    assert answer.status == 202 and answer.body["run"] == run.run_id, answer.body
    assert answer.body["message"] == f"already running: run {run.run_id}"
    assert recovery.state.get_run("drill", run.run_id).step == "verify"
    # The lease lapses: the timer takes the run over and finishes it from where it stopped.
    held = recovery.state.get_run("drill", run.run_id)
    held.data["leaseUntil"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    recovery.state.save_run(held)
    answers = _together(lambda: drills.resume(recovery))
    assert sorted(len(a) for a in answers) == [0, 1], answers
    done = recovery.state.get_run("drill", run.run_id)
    assert done.status == "succeeded", done.data
    restores = [c for c in cosmos.calls if c[0] == "start_restore"]
    assert len(restores) == 1
    assert done.data["scratch"].lower() not in {
        k.lower() for k in endpoint.recovery.describe()["cosmos"]}
    assert len(_audit_of(recovery, "drill/orders", "recovery.drill")) == 1


def test_two_concurrent_backup_check_runs_record_each_check_once_and_notify_once(
        recovery: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.housekeeping import recovery_api

    for port in ("cosmos", "storage", "jobs"):
        monkeypatch.setattr(recovery, port, _Slowed(getattr(recovery, port), 0.1))
    expected = {"cosmos-backup": False, "storage-protection": False, "backup-jobs": False}
    for round_ in (1, 2):  # twice in a row
        answers = _together(recovery_api.run_backup_checks)
        assert answers == [expected, expected], answers
        for check in expected:
            records = _audit_of(recovery, f"check/{check}", f"recovery.{check}")
            assert len(records) == round_, (check, records)
    # The same day and findings: one grouped alert per check, whoever sent it.
    assert sorted(n["labels"]["check"] for n in receiver.received
                  if n["kind"] == "recovery") == sorted(expected)
    assert len(recovery_api.list_backups(_operator(), {}).body["checks"]) == 3


def test_a_backup_check_that_loses_the_save_race_is_skipped_and_the_next_checks_still_run(
        recovery: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.housekeeping import recovery_api

    recovery_api.run_backup_checks()  # yesterday's records, say
    real = recovery.state

    class RacedState:
        """Another instance records cosmos-backup between this one's read and its save."""

        raced = False

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def save_run(self, run: Any) -> Any:
            if run.run_id == "cosmos-backup" and not self.raced:
                self.raced = True
                other = real.get_run(run.kind, run.run_id)
                other.data = {**run.data, "checkedAt": datetime.now(UTC).isoformat()}
                real.save_run(other)
            return real.save_run(run)

    monkeypatch.setattr(recovery, "state", RacedState())
    before = {c: len(_audit_of(recovery, f"check/{c}", f"recovery.{c}"))
              for c in ("cosmos-backup", "storage-protection", "backup-jobs")}
    assert recovery_api.run_backup_checks() == {
        "cosmos-backup": False, "storage-protection": False, "backup-jobs": False}
    after = {c: len(_audit_of(recovery, f"check/{c}", f"recovery.{c}")) for c in before}
    assert after == {"cosmos-backup": before["cosmos-backup"],  # the other instance's
                     "storage-protection": before["storage-protection"] + 1,
                     "backup-jobs": before["backup-jobs"] + 1}
    assert len([n for n in receiver.received if n["kind"] == "recovery"]) == 3
