"""Backup checks (daily timer): what is configured against what the policy's RPO and retention
need, for Cosmos DB backup policies, storage accounts' blob protection and Azure Backup jobs in
Log Analytics. Each check sends at most one grouped alert per run, naming every failing
resource; healthy resources send nothing. The last result of each check is kept (a run record
of kind `recovery-check`) for `GET /api/backups` and `pitcrew backups`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.errors import error_summary
from pitcrew.housekeeping.recovery_policy import (
    BackupJobsRule,
    CosmosBackupRule,
    StorageProtectionRule,
)
from pitcrew.housekeeping.recovery_ports import BlobProtection, CosmosBackup, RecoveryServices
from pitcrew.links import docs_url
from pitcrew.notify.model import Action, Notification
from pitcrew.state import RunRecord, StaleRun

log = logging.getLogger(__name__)

CHECK_KIND = "recovery-check"
RUNBOOK = docs_url("recovery.md")


@dataclass
class ResourceResult:
    resource: str
    problems: list[str] = field(default_factory=list)
    configured: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "ok": self.ok, "problems": self.problems,
                "configured": self.configured}


@dataclass
class CheckResult:
    check: str
    title: str
    results: list[ResourceResult] = field(default_factory=list)
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def failing(self) -> list[ResourceResult]:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "checkedAt": self.checked_at.isoformat(),
                "ok": not self.failing, "resources": [r.to_dict() for r in self.results]}


def _short(resource: str) -> str:
    return resource.rstrip("/").rsplit("/", 1)[-1]


def _unreadable(resource: str, exc: Exception) -> ResourceResult:
    what = error_summary(exc, with_message=False)
    return ResourceResult(resource, [f"could not be read ({what})"])


class _AccountRule(Protocol):
    @property
    def account(self) -> str: ...


R = TypeVar("R", bound=_AccountRule)
C = TypeVar("C")


def _each_account(check: CheckResult, rules: Iterable[R], read: Callable[[str], C],
                  judge: Callable[[R, C], ResourceResult]) -> CheckResult:
    """Read each rule's account and judge what is configured against the rule; an account
    that cannot be read is a failing result naming why."""
    for rule in rules:
        try:
            configured = read(rule.account)
        except Exception as exc:
            check.results.append(_unreadable(rule.account, exc))
            continue
        check.results.append(judge(rule, configured))
    return check


def check_cosmos(svc: RecoveryServices, rules: Iterable[CosmosBackupRule]) -> CheckResult:
    return _each_account(CheckResult("cosmos-backup", "Cosmos DB backup policy"), rules,
                         svc.cosmos.backup, _cosmos_result)


def _cosmos_result(rule: CosmosBackupRule, backup: CosmosBackup) -> ResourceResult:
    result = ResourceResult(rule.account, configured={
        "mode": backup.mode, "tier": backup.tier, "intervalMinutes": backup.interval_minutes,
        "retentionHours": backup.retention_hours})
    if backup.mode == "Continuous":
        hours = backup.continuous_hours or 0
        if hours < rule.retention_hours:
            result.problems.append(f"continuous tier {backup.tier} keeps {hours} h, the "
                                   f"policy needs {rule.retention_hours} h")
    elif rule.continuous:
        result.problems.append("periodic backup; the policy needs continuous backup "
                               "(point-in-time restore)")
    else:
        interval, retention = backup.interval_minutes or 0, backup.retention_hours or 0
        if interval > rule.rpo_minutes:
            result.problems.append(f"backup every {interval} min, RPO is "
                                   f"{rule.rpo_minutes} min")
        if retention < rule.retention_hours:
            result.problems.append(f"backups kept {retention} h, the policy needs "
                                   f"{rule.retention_hours} h")
    return result


def check_storage(svc: RecoveryServices, rules: Iterable[StorageProtectionRule]) -> CheckResult:
    return _each_account(CheckResult("storage-protection", "Storage blob data protection"),
                         rules, svc.storage.blob_protection, _storage_result)


def _storage_result(rule: StorageProtectionRule, got: BlobProtection) -> ResourceResult:
    result = ResourceResult(rule.account, configured={
        "softDeleteDays": got.soft_delete_days,
        "containerSoftDeleteDays": got.container_soft_delete_days,
        "versioning": got.versioning,
        "pointInTimeRestoreDays": got.point_in_time_restore_days})
    if (got.soft_delete_days or 0) < rule.soft_delete_days:
        result.problems.append(f"blob soft delete {got.soft_delete_days or 'off'} "
                               f"(days), the policy needs {rule.soft_delete_days}")
    wanted = rule.container_soft_delete_days
    if wanted and (got.container_soft_delete_days or 0) < wanted:
        have = got.container_soft_delete_days or "off"
        result.problems.append(f"container soft delete {have} (days), the policy needs "
                               f"{wanted}")
    if rule.versioning and not got.versioning:
        result.problems.append("blob versioning is off")
    pitr = rule.point_in_time_restore_days
    if pitr and (got.point_in_time_restore_days or 0) < pitr:
        have = got.point_in_time_restore_days or "off"
        result.problems.append(f"point-in-time restore {have} (days), the policy needs "
                               f"{pitr}")
    return result


def check_jobs(svc: RecoveryServices, rule: BackupJobsRule | None, *,
               now: datetime | None = None) -> CheckResult:
    check = CheckResult("backup-jobs", "Azure Backup jobs")
    if rule is None or not rule.items:
        return check
    now = now or datetime.now(UTC)
    try:
        rows = svc.jobs.item_status(rule.workspace_id, timedelta(hours=rule.lookback_hours))
    except Exception as exc:
        check.results.append(_unreadable(f"workspace {rule.workspace_id}", exc))
        return check
    by_item = {row.item.lower(): row for row in rows}
    for item in rule.items:
        row = by_item.get(item.item.lower())
        label = item.name or item.item
        result = ResourceResult(label)
        if row is None:
            result.problems.append(f"no backup job in the last {rule.lookback_hours:g} h")
        else:
            result.configured = {"lastJobStart": row.last_start.isoformat()
                                 if row.last_start else None, "lastStatus": row.last_status,
                                 "failedJobs": row.failed}
            if row.last_status.lower() in ("failed", "cancelled"):
                code = f" ({row.last_failure_code})" if row.last_failure_code else ""
                result.problems.append(f"latest backup job {row.last_status.lower()}{code}")
            if row.last_start is None or now - row.last_start > timedelta(hours=item.rpo_hours):
                age = (now - row.last_start).total_seconds() / 3600 if row.last_start else None
                result.problems.append(
                    f"latest backup job started {age:.1f} h ago, RPO is {item.rpo_hours:g} h"
                    if age is not None else "no backup job start time")
        check.results.append(result)
    return check


def alert_for(check: CheckResult, *, kind: str = "recovery") -> Notification | None:
    """One grouped notification for every failing resource of a check run; None when healthy.
    Its id is the check, the day and the failing set, so a retried run notifies once."""
    failing = check.failing
    if not failing:
        return None
    fingerprint = hashlib.sha256("\n".join(
        f"{r.resource}:{';'.join(r.problems)}" for r in failing).encode()).hexdigest()[:16]
    day = check.checked_at.strftime("%Y-%m-%d")
    names = ", ".join(_short(r.resource) for r in failing[:5])
    more = f" and {len(failing) - 5} more" if len(failing) > 5 else ""
    facts = {_short(r.resource)[:80]: "; ".join(r.problems)[:500] for r in failing[:20]}
    return Notification(
        id=f"recovery:{check.check}:{day}:{fingerprint}",
        dedup_key=f"recovery:{check.check}",
        kind=kind,
        severity="critical" if check.check in ("drills", "image-purge") else "warning",
        status="firing",
        title=f"{check.title}: {len(failing)} failing ({names}{more})",
        summary=(f"pitcrew's {check.title.lower()} check found {len(failing)} of "
                 f"{len(check.results)} resources short of the recovery policy. Fix the "
                 "configuration (or the policy) and the next daily check clears it."),
        correlation_id=f"{check.check}:{day}",
        facts=facts,
        actions=(Action(label="Follow the recovery runbook", url=RUNBOOK),
                 Action(label="See every result", command="pitcrew backups")),
        # One alert rule per check, so each check groups (and resolves) on its own.
        labels={"kind": kind, "alertRule": f"recovery-{check.check}", "check": check.check},
    )


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _recorded_elsewhere(run: RunRecord, check: CheckResult, began: datetime) -> bool:
    """Did another instance record this check already, as fresh as this one? Its result is
    from a check that began no earlier than this one, or it is the same result, saved since
    this invocation `began` (two invocations of the timer at once)."""
    theirs = _parse(run.data.get("checkedAt"))
    if theirs is not None and theirs >= check.checked_at:
        return True
    recorded = [(r.get("resource"), r.get("problems")) for r in run.data.get("resources", [])
                if isinstance(r, dict)]
    same = recorded == [(r.resource, r.problems) for r in check.results]  # the same findings
    return same and run.updated_at >= began


def record(svc: RecoveryServices, check: CheckResult, *, began: datetime | None = None) -> bool:
    """Keep the check's latest result (one run record per check) and audit the run. False
    when another instance recorded this check meanwhile (it lost the save race, or the same
    result was saved since this invocation `began`): it is skipped, not recorded twice."""
    began = began or check.checked_at
    data = check.to_dict()
    status = "ok" if not check.failing else "failing"
    for _ in range(3):
        run = svc.state.get_run(CHECK_KIND, check.check)
        if run is not None and _recorded_elsewhere(run, check, began):
            return False
        try:
            if run is None:
                if svc.state.create_run(RunRecord(CHECK_KIND, check.check, "done", status,
                                                  data)) is None:
                    continue  # created concurrently: look at what was recorded
            else:
                run.data, run.status = data, status
                svc.state.save_run(run)
        except StaleRun:
            continue  # saved concurrently: look at what was recorded
        break
    else:
        log.info("check %s: recorded by another instance meanwhile; skipped", check.check)
        return False
    svc.audit.append(AuditRecord(
        actor=app_identity(), action=f"recovery.{check.check}", target=f"check/{check.check}",
        outcome="succeeded" if not check.failing else "failed",
        correlation_id=f"{check.check}:{check.checked_at:%Y-%m-%d}",
        details={"resources": len(check.results), "failing": [r.resource[-200:]
                                                              for r in check.failing][:20]},
    ))
    return True


def report(svc: RecoveryServices, check: CheckResult, *,
           began: datetime | None = None) -> CheckResult:
    """Record a check's result and send its one grouped alert (when something fails); a
    check another instance recorded meanwhile is left to that instance (it alerts)."""
    if not record(svc, check, began=began):
        return check
    notification = alert_for(check)
    if notification is not None:
        svc.router.send(notification)
    return check


def run_backup_checks(svc: RecoveryServices) -> list[CheckResult]:
    """Each check in turn; one another invocation (running at the same time) recorded is
    skipped, and the next checks still run."""
    began = datetime.now(UTC)
    backups = svc.policy.backups
    checks: list[tuple[bool, Callable[[], CheckResult]]] = [
        (bool(backups.cosmos), lambda: check_cosmos(svc, backups.cosmos)),
        (bool(backups.storage), lambda: check_storage(svc, backups.storage)),
        (bool(backups.jobs and backups.jobs.items), lambda: check_jobs(svc, backups.jobs)),
    ]
    return [report(svc, build(), began=began) for wanted, build in checks if wanted]


def last_results(svc: RecoveryServices) -> list[dict[str, Any]]:
    return [run.data for run in svc.state.list_runs(CHECK_KIND)]


# A check over a whole subscription may hold hundreds of resources: an answer lists this many
# per check and says how many matched (narrow it with `resource=` or `failing=`).
MAX_LISTED_RESOURCES = 100


def result_view(result: dict[str, Any], *, failing: bool = False,
                resource: str | None = None) -> dict[str, Any] | None:
    """A check's last result as listed: its resources narrowed to the failing ones and to one
    resource id (compared without case, as ARM does), at most MAX_LISTED_RESOURCES of them;
    None when a filter leaves the check nothing to show."""
    resources = [r for r in result.get("resources", []) if isinstance(r, dict)]
    if failing:
        resources = [r for r in resources if not r.get("ok")]
    if resource is not None:
        wanted = resource.lower()
        resources = [r for r in resources if str(r.get("resource", "")).lower() == wanted]
    if (failing and result.get("ok") and not resources) or (resource is not None
                                                             and not resources):
        return None
    return {**result, "resources": resources[:MAX_LISTED_RESOURCES],
            "resourceCount": len(resources)}
