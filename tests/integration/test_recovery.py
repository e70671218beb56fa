"""Recovery readiness against the local Azure endpoint (real azure-mgmt-cosmosdb, azure-mgmt-
storage, azure-monitor-query and azure-containerregistry clients) and Azurite: backup checks,
restore drills (dry run, real run, resumed after a crash), the verified image purge."""

from __future__ import annotations

import json
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


@pytest.fixture
def recovery(pitcrew_env: Path, endpoint: LocalAzure, receiver: Receiver,
             monkeypatch: pytest.MonkeyPatch) -> Any:
    from pitcrew.bootstrap import get_services, reset_services

    env = endpoint.environment()
    for name in ("PITCREW_LOCAL_AZURE_URL", "PITCREW_LOCAL_AZURE_CA"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    pitcrew_env.write_text(policy_text(receiver.url))
    reset_services()
    return get_services().recovery


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
