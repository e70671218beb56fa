"""Restore drills: a persisted, resumable, idempotent job per drill run (kind `drill`).

Continuous backup: window (restorable timestamps cover the RPO) -> restore (a scratch account
created with createMode Restore at a recent point in time) -> verify (containers present, item
counts within tolerance of the source at that time, from the DocumentCount metric) -> cleanup
(delete the scratch account) -> done. Each step re-reads the world before it acts (AWS
rotation-lambda style): the scratch account's name is saved before it is created, so a crash
at any point is resumed by the `resume_drills` timer, and a run older than `max_hours` skips
to cleanup: the scratch account never stays behind for ever.

Periodic backup cannot be restored by pitcrew (Azure restores it through a support case): the
drill writes the case text and waits as a manual step with an owner and a due date, completed
with `POST /api/drills/{name}/run {"manualOutcome": ...}`.

A failed or overdue drill is one grouped alert of the `drills` check.

Concurrency: one run per drill is active at a time. Starting it is claimed (StateStore.claim
on "the run after the drill's last run"), so of N concurrent starters one creates the run and
the others get that run. One worker at a time advances a run: `advance` takes the run's lease
(`leaseOwner`, `leaseUntil` in its data, written with the run's ETag, as the replay worker
does) and renews it at every save; a caller that finds the run leased gets `DrillBusy` (the
API answers 202 "already running"). A worker that dies keeps the lease until it lapses (its
time budget plus `LEASE_MARGIN_SECONDS`); then the `resume_drills` timer or the next caller
takes the run over and repeats the step it was in, which every step tolerates.

Azure's answers: every call to the Cosmos DB port goes through `_Guarded`. An error Azure will
answer again (a connection error, 408, 429, 5xx) keeps the run `running` for the resume timer,
its reason in the run's problems (as "retrying after a transient error ..."; it is set aside in
`retried` once the step goes through). Any other error (a refusal: 4xx, or no status at all)
fails the step at once with Azure's reason: the run goes to cleanup (a scratch account) or done,
and ends `failed`, audited and alerted like any failed drill.

A dry run (`dry_run`) makes the same calls through `_Guarded`: a call that fails answers the
plan with mode `unknown`, the call and Azure's reason in its problems and `azureError`.

The timers handle each drill on its own: an unexpected error from one run (not Azure's answer
to a call, which the steps handle, but e.g. the state store or a bug) is logged with the drill
and run id (the error's type and status only: its message may quote a secret), kept in the
run's problems as "retrying after an error at step S: <type>" (dropped once the step goes
through, like a transient error) and audited `recovery.drill.error`; the other drills go on. The
timer raises at the end only when every drill it tried failed.

Scratch accounts: each run restores into an account named after the run
(`<source>-drYYMMDDHHMM<8 hex of the run id>`) and tagged `pitcrew-drill: <run id>`. An account
that exists and is not the run's own is never verified or deleted by it: its tag decides when
the Cosmos DB port can read tags (`CosmosTags`); otherwise the run owns it only when it asked
Azure for that restore itself and Azure did not refuse it.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.azure.errors import is_transient
from pitcrew.errors import Conflict, InvalidInput, RetryLater, error_summary
from pitcrew.housekeeping.backups import CheckResult, ResourceResult, report
from pitcrew.housekeeping.recovery_policy import DrillRule
from pitcrew.housekeeping.recovery_ports import CosmosBackups, RecoveryServices
from pitcrew.state import RunRecord, StaleRun

log = logging.getLogger(__name__)

KIND = "drill"
ACTIVE = ("running", "waiting-manual")
STEPS = ("window", "restore", "verify", "cleanup", "done")
# A worker's lease on a run lasts its time budget plus this margin (each step's waits are
# bounded by the budget; the margin covers the calls that are not), renewed at every save.
LEASE_MARGIN_SECONDS = 120.0
START_SCOPE = "drill-start"  # claims: "{drill}:after:{last run id}"
START_LEASE_SECONDS = 60.0  # a starter that dies between claim and create is replaced after
START_WAIT_SECONDS = 10.0  # how long a losing starter waits for the winner's run to appear
SCRATCH_TAG = "pitcrew-drill"  # the scratch account's tag: the id of the run that made it
RETRYING = "retrying after a transient error "  # the run's problem while a step is retried
# The run's problem after a timer could not advance it (an unexpected error, not Azure's answer)
RETRYING_ERROR = "retrying after an error "
MAX_RETRIED = 20  # transient errors kept in a run's `retried`


class DrillTimerFailed(RuntimeError):
    """Every drill a timer tried failed (each is logged, audited and kept in its run): raised
    at the end, so the platform shows the timer's run as failed."""

    def __init__(self, timer: str, failed: list[str]) -> None:
        self.failed = failed
        super().__init__(f"{timer}: every drill it tried failed ({', '.join(failed[:10])}); "
                         "see the log")


class DrillBusy(RetryLater):
    """Another worker holds the run's lease and is advancing it now: nothing to do here."""

    def __init__(self, run: RunRecord) -> None:
        self.run = run
        super().__init__(f"already running: run {run.run_id}")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def scratch_id(rule: DrillRule, started: datetime, run_id: str | None = None) -> str:
    """The scratch account of a run: `<source>-drYYMMDDHHMM<8 hex>`, the hex digits the run id's
    hash (random for a plan), so that no two runs share one, and at most 44 lowercase
    letters, digits and hyphens (Cosmos DB's rule for account names)."""
    parts = rule.account.strip("/").split("/")
    group = rule.scratch_resource_group or parts[3]
    suffix = (hashlib.sha256(run_id.encode()).hexdigest() if run_id
              else uuid.uuid4().hex)[:8]
    name = f"{parts[-1].lower()[:23].rstrip('-')}-dr{started:%y%m%d%H%M}{suffix}"
    return f"/subscriptions/{parts[1]}/resourceGroups/{group}/providers/" \
           f"Microsoft.DocumentDB/databaseAccounts/{name}"


def runs_of(svc: RecoveryServices, name: str) -> list[RunRecord]:
    runs = [r for r in svc.state.list_runs(KIND) if r.data.get("drill") == name]
    return sorted(runs, key=lambda r: r.created_at)


def active_run(svc: RecoveryServices, name: str) -> RunRecord | None:
    return next((r for r in reversed(runs_of(svc, name)) if r.status in ACTIVE), None)


@dataclass
class Plan:
    """What a drill would do now (the dry run's answer; nothing is created)."""

    drill: str
    mode: str
    problems: list[str]
    restore_at: datetime | None = None
    scratch: str | None = None
    oldest_restorable: datetime | None = None
    case_text: str | None = None
    azure_error: dict[str, Any] | None = None  # the call Azure failed (mode `unknown`)

    def to_dict(self) -> dict[str, Any]:
        return {"drill": self.drill, "dryRun": True, "mode": self.mode,
                "problems": self.problems, "restoreAt": _iso(self.restore_at),
                "scratchAccount": self.scratch, "oldestRestorable": _iso(self.oldest_restorable),
                "supportCase": self.case_text, "azureError": self.azure_error}


def support_case_text(rule: DrillRule, location: str, interval: int | None,
                      retention: int | None) -> str:
    return (
        f"Subject: Restore drill - restore Cosmos DB account {rule.account.rsplit('/', 1)[-1]} "
        f"from periodic backup\n\n"
        f"Please restore the Cosmos DB account {rule.account} (region {location}) from its most "
        f"recent periodic backup into a NEW account named "
        f"{rule.account.rsplit('/', 1)[-1][:30]}-drill in resource group "
        f"{rule.scratch_resource_group or rule.account.split('/')[4]}. This is a scheduled "
        f"restore drill (no incident): do not overwrite the source account. The backup "
        f"interval is {interval} minutes and retention {retention} hours. Please report the "
        f"time the restore completed so we can record our recovery time.\n"
        f"Severity: C (drill). Owner: {rule.owner}."
    )


def plan(svc: RecoveryServices, rule: DrillRule, *, now: datetime | None = None) -> Plan:
    """Read-only: does the backup cover the RPO window, and what would the drill create."""
    now = now or _now()
    backup = svc.cosmos.backup(rule.account)
    if backup.mode != "Continuous":
        text = support_case_text(rule, backup.location, backup.interval_minutes,
                                 backup.retention_hours)
        return Plan(rule.name, "manual", [], case_text=text)
    source = svc.cosmos.restorable(rule.account, backup.location)
    if source is None:
        return Plan(rule.name, "restore", ["no restorable account for the source (is "
                                           "continuous backup on?)"])
    problems: list[str] = []
    need = now - timedelta(minutes=rule.rpo_minutes)
    at = now - timedelta(minutes=rule.restore_lag_minutes)
    if source.oldest_restorable is None or source.oldest_restorable > need:
        problems.append(f"restorable window starts {_iso(source.oldest_restorable)}, the RPO "
                        f"needs {need.isoformat()}")
    elif source.oldest_restorable > at:
        problems.append(f"restore point {at.isoformat()} is before the oldest restorable time")
    return Plan(rule.name, "restore" if rule.restore else "window", problems, restore_at=at,
                scratch=scratch_id(rule, now) if rule.restore else None,
                oldest_restorable=source.oldest_restorable)


def dry_run(svc: RecoveryServices, rule: DrillRule, *, now: datetime | None = None) -> Plan:
    """The dry run's answer: `plan` with every call to the Cosmos DB port guarded. A call that
    fails (refused, or transient) is the plan's problem naming the call and Azure's reason
    (mode `unknown`, `azureError`), never an exception."""
    guarded = replace(svc, cosmos=cast(CosmosBackups, _Guarded(svc.cosmos)))
    try:
        return plan(guarded, rule, now=now)
    except AzureFailed as failed:
        kind = "transient, try again later" if failed.transient else "refused"
        log.warning("drill %s: dry run: %s failed (%s): %s", rule.name, failed.what, kind,
                    failed.reason)
        return Plan(rule.name, "unknown",
                    [f"{failed.what} failed ({kind}): {failed.reason}"],
                    azure_error={"call": failed.call, "reason": failed.reason,
                                 "transient": failed.transient})


def _next_run(runs: list[RunRecord], last: RunRecord | None) -> RunRecord | None:
    """The run created after `last` (after nothing: the first), of a drill's runs in order."""
    ids = [r.run_id for r in runs]
    if last is None:
        return runs[0] if runs else None
    if last.run_id not in ids:
        return None
    index = ids.index(last.run_id) + 1
    return runs[index] if index < len(runs) else None


def start(svc: RecoveryServices, rule: DrillRule, actor: str, *,
          now: datetime | None = None) -> RunRecord:
    """A new run of the drill, or the one already going (one active run per drill). Of
    concurrent starters exactly one creates the run: each claims "the run after the drill's
    last run"; the others answer with the run the winner created."""
    runs = runs_of(svc, rule.name)
    existing = next((r for r in reversed(runs) if r.status in ACTIVE), None)
    if existing is not None:
        return existing
    last = runs[-1] if runs else None
    key = f"{rule.name}:after:{last.run_id if last else '-'}"
    try:
        claim = svc.state.claim(START_SCOPE, key, lease_seconds=START_LEASE_SECONDS)
    except RetryLater:
        claim = None  # another caller is creating that run right now
    if claim is None:
        return _started_elsewhere(svc, rule, last)
    try:
        # A starter that died after creating the run (before completing its claim) made it.
        run = _next_run(runs_of(svc, rule.name), last) or _create(svc, rule, actor,
                                                                   now or _now())
    except Exception:
        svc.state.release(claim, reason="the drill run could not be created")
        raise
    svc.state.complete(claim, outcome=run.run_id)
    return run


def _started_elsewhere(svc: RecoveryServices, rule: DrillRule,
                       last: RunRecord | None) -> RunRecord:
    """The run another caller is starting (it won the claim): wait for it to appear."""
    deadline = time.monotonic() + START_WAIT_SECONDS
    while True:
        run = _next_run(runs_of(svc, rule.name), last)
        if run is not None:
            return run
        if time.monotonic() >= deadline:
            raise RetryLater(f"drill {rule.name} is being started by another request; retry")
        time.sleep(0.2)


def _create(svc: RecoveryServices, rule: DrillRule, actor: str, now: datetime) -> RunRecord:
    base = f"{rule.name}-{now:%Y%m%dT%H%M%S}"
    for n in range(1, 10):  # a run of the drill that ended within the same second has `base`
        run = RunRecord(KIND, base if n == 1 else f"{base}-{n}", "window", "running", {
            "drill": rule.name, "account": rule.account, "actor": actor,
            "startedAt": _iso(now), "problems": [],
        })
        created = svc.state.create_run(run)
        if created is None:
            continue
        svc.audit.append(AuditRecord(actor=actor, action="recovery.drill.start",
                                     target=f"drill/{rule.name}", outcome="queued",
                                     correlation_id=run.run_id,
                                     details={"account": rule.account}))
        return created
    raise StaleRun(f"drill {rule.name}: no free run id for {base}")


def _save(svc: RecoveryServices, run: RunRecord, step: str | None = None) -> RunRecord:
    if step is not None:
        run.step = step
    try:
        return svc.state.save_run(run)
    except Conflict:
        raise StaleRun(f"drill run {run.run_id} was advanced by another worker") from None


def _leased(run: RunRecord) -> bool:
    until = _parse(run.data.get("leaseUntil"))
    return until is not None and until > _now()


class _Lease:
    """One worker's hold on a run while it advances it: `leaseOwner` and `leaseUntil` in the
    run's data, taken and renewed by ETag-conditional saves, so exactly one worker advances a
    run at a time. It lasts the worker's time budget plus LEASE_MARGIN_SECONDS."""

    def __init__(self, svc: RecoveryServices, deadline: float) -> None:
        self.svc = svc
        self.deadline = deadline
        self.owner = uuid.uuid4().hex

    def _until(self) -> str | None:
        left = max(0.0, self.deadline - time.monotonic())
        return _iso(_now() + timedelta(seconds=left + LEASE_MARGIN_SECONDS))

    def _latest(self, run: RunRecord) -> RunRecord:
        latest = self.svc.state.get_run(KIND, run.run_id)
        if latest is None:
            raise RetryLater(f"drill run {run.run_id} vanished; retry")
        return latest

    def take(self, run: RunRecord) -> RunRecord:
        """The run leased to this worker; DrillBusy while another worker's lease is live.
        A run that is no longer running comes back as it is (nothing to advance)."""
        for _ in range(5):
            if run.status != "running":
                return run
            if _leased(run):
                raise DrillBusy(run)
            if run.data.get("leaseUntil"):
                log.warning("drill run %s: the lease of the worker at step %s lapsed; taking "
                            "the run over", run.run_id, run.step)
            run.data["leaseOwner"], run.data["leaseUntil"] = self.owner, self._until()
            try:
                return self.svc.state.save_run(run)
            except StaleRun:
                run = self._latest(run)  # another worker moved it: look again
        raise RetryLater(f"drill run {run.run_id} is contended; retry")

    def save(self, run: RunRecord, step: str | None = None) -> RunRecord:
        """Persist the run's progress and renew the lease (or drop it once the run stops
        running); DrillBusy when another worker took the run over meanwhile."""
        if step is not None:
            run.step = step
        run.data["leaseUntil"] = self._until() if run.status == "running" else None
        try:
            return self.svc.state.save_run(run)
        except StaleRun:
            log.warning("drill run %s was taken over by another worker at step %s; stopping",
                        run.run_id, run.step)
            raise DrillBusy(self._latest(run)) from None

    def release(self, run: RunRecord) -> RunRecord:
        """Hand the run back (budget spent, or waiting on Azure): the next caller or the
        resume timer goes on at once."""
        if run.status != "running" or not run.data.get("leaseUntil"):
            return run
        run.data["leaseUntil"] = None
        try:
            return self.svc.state.save_run(run)
        except StaleRun:
            return self._latest(run)

    def release_stored(self, run_id: str) -> None:
        """After a failed step: drop the lease on the stored run (not on the copy in memory,
        which holds the failed step's half-made changes), if it is still this worker's."""
        try:
            latest = self.svc.state.get_run(KIND, run_id)
            if latest is not None and latest.data.get("leaseOwner") == self.owner \
                    and latest.data.get("leaseUntil"):
                latest.data["leaseUntil"] = None
                self.svc.state.save_run(latest)
        except Exception as exc:  # it lapses by itself
            log.warning("drill run %s: could not release the lease (%s)", run_id,
                        type(exc).__name__)


class AzureFailed(Exception):
    """A call to the Cosmos DB port failed: `transient` when Azure may answer it next time
    (the resume timer retries the step), otherwise a refusal that fails the step at once."""

    def __init__(self, call: str, exc: Exception) -> None:
        self.call = call
        self.transient = is_transient(exc)
        self.reason = error_summary(exc)
        super().__init__(f"{_CALLS.get(call, call)}: {self.reason}")

    @property
    def what(self) -> str:
        return _CALLS.get(self.call, self.call)


_CALLS = {
    "backup": "reading the source's backup policy",
    "restorable": "reading the source's restorable account",
    "state": "reading the scratch account",
    "tags": "reading the scratch account's tags",
    "start_restore": "the restore",
    "wait": "waiting for the restore",
    "containers": "listing the containers",
    "item_counts": "reading the item counts",
    "delete": "deleting the scratch account",
}


class _Guarded:
    """The Cosmos DB port, each call's failure raised as AzureFailed (naming the call)."""

    def __init__(self, inner: CosmosBackups) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                raise AzureFailed(name, exc) from exc

        return call


def advance(svc: RecoveryServices, rule: DrillRule, run: RunRecord,
            *, budget_seconds: float | None = None) -> RunRecord:
    """Advance a run as far as the time budget allows, holding its lease: DrillBusy when
    another worker holds it. Every step is safe to repeat (after a takeover)."""
    deadline = time.monotonic() + (budget_seconds if budget_seconds is not None
                                   else svc.budget_seconds)
    lease = _Lease(svc, deadline)
    run = lease.take(run)
    if run.status != "running":
        return run
    try:
        run = _steps(svc, rule, run, lease, deadline)
    except DrillBusy:
        raise
    except Exception:
        lease.release_stored(run.run_id)
        raise
    return lease.release(run)


def _settle_retrying(data: dict[str, Any], *, gave_up: bool) -> bool:
    """The step a transient error held up went through (its "retrying" problem is dropped;
    the error stays in `retried`) or the run gives up on it (the problem stays, as the last
    error before giving up). True when the problems changed."""
    problems: list[str] = data["problems"]
    held = (RETRYING, RETRYING_ERROR)
    kept = [p for p in problems if not p.startswith(held)]
    if len(kept) == len(problems):
        return False
    if gave_up:
        kept += [f"the last error before giving up, {p[len(prefix):]}"
                 for p in problems for prefix in held if p.startswith(prefix)]
    data["problems"] = kept
    return True


def _retrying(data: dict[str, Any], step: str, failed: AzureFailed) -> None:
    """A transient error: the run's one "retrying" problem names it (the latest replaces the
    one before) and `retried` keeps it."""
    data["problems"] = [p for p in data["problems"] if not p.startswith(RETRYING)]
    data["problems"].append(f"{RETRYING}at step {step}, {failed.what}: {failed.reason}")
    data["retried"] = [*(data.get("retried") or []), {
        "step": step, "call": failed.call, "reason": failed.reason, "at": _iso(_now())},
    ][-MAX_RETRIED:]


def _failed_step(lease: _Lease, run: RunRecord, failed: AzureFailed) -> tuple[RunRecord, bool]:
    """A call of the step failed: a transient error keeps the run for the resume timer (True:
    stop here); a refusal fails the step now, the run going to cleanup (its scratch account,
    unless Azure refused to create it) or done."""
    data = run.data
    log.warning("drill run %s: %s at step %s failed (%s): %s", run.run_id, failed.what,
                run.step, "transient" if failed.transient else "refused", failed.reason)
    if failed.transient:
        _retrying(data, run.step, failed)
        return lease.save(run), True
    _settle_retrying(data, gave_up=True)
    if run.step == "cleanup":
        data["problems"].append(f"{failed.what} failed: {failed.reason}; it is left behind, "
                                f"delete it by hand (tag {SCRATCH_TAG}: {run.run_id})")
        return lease.save(run, "done"), False
    data["problems"].append(f"{failed.what} failed at step {run.step}: {failed.reason}")
    if failed.call == "start_restore":
        data["restoreRefused"] = True  # this run made no account: any there is not its own
    cleanup = bool(data.get("scratch")) and run.step in ("restore", "verify")
    return lease.save(run, "cleanup" if cleanup else "done"), False


def _owned(svc: RecoveryServices, run: RunRecord, scratch: str) -> bool:
    """Is the (existing) scratch account this run's own? Its `pitcrew-drill` tag says so when
    the port reads tags; otherwise the run owns it when it asked Azure for that restore itself
    (saved before the call) and Azure did not refuse it."""
    if run.data.get("scratchForeign"):
        return False
    read = getattr(svc.cosmos, "tags", None)
    if callable(read):
        tags = read(scratch)
        if tags is not None:
            mine = {str(k).lower(): v for k, v in tags.items()}.get(SCRATCH_TAG)
            return bool(mine == run.run_id[:256])
    return bool(run.data.get("restoreStartedAt")) and not run.data.get("restoreRefused")


def _foreign(lease: _Lease, run: RunRecord, scratch: str) -> RunRecord:
    """The scratch account exists and is not this run's: left alone, the run fails."""
    run.data["scratchForeign"] = True
    run.data["problems"].append(
        f"the scratch account {scratch.rsplit('/', 1)[-1]} exists and is not this run's (its "
        f"{SCRATCH_TAG} tag is not {run.run_id}): left alone, neither verified nor deleted")
    return lease.save(run, "done")


def _steps(svc: RecoveryServices, rule: DrillRule, run: RunRecord, lease: _Lease,
           deadline: float) -> RunRecord:
    svc = replace(svc, cosmos=cast(CosmosBackups, _Guarded(svc.cosmos)))
    while run.status == "running":
        left = max(0.0, deadline - time.monotonic())
        started = _parse(run.data.get("startedAt")) or run.created_at
        if run.step in ("window", "restore", "verify") and \
                _now() - started > timedelta(hours=rule.max_hours):
            _settle_retrying(run.data, gave_up=True)
            run.data["problems"].append(f"the drill took longer than {rule.max_hours:g} h")
            run = lease.save(run, "cleanup" if run.data.get("scratch") else "done")
            continue
        try:
            run, stop = _step(svc, rule, run, lease, left)
        except AzureFailed as failed:
            run, stop = _failed_step(lease, run, failed)
        else:
            if run.status == "running" and _settle_retrying(run.data, gave_up=False):
                run = lease.save(run)
        if stop or (time.monotonic() >= deadline and run.status == "running"):
            break
    return run


def _step(svc: RecoveryServices, rule: DrillRule, run: RunRecord, lease: _Lease,
          left: float) -> tuple[RunRecord, bool]:
    """One step of the run: the run as saved, and True when the run stops here for now
    (waiting on Azure, or on a person)."""
    data = run.data
    if run.step == "window":
        found = plan(svc, rule)
        if found.mode == "manual":
            due = _now() + timedelta(days=rule.manual_due_days)
            data.update({"mode": "manual", "owner": rule.owner, "due": _iso(due),
                         "supportCase": found.case_text})
            run.status = "waiting-manual"
            run = lease.save(run, "manual")
            svc.audit.append(AuditRecord(
                actor=data["actor"], action="recovery.drill.manual",
                target=f"drill/{rule.name}", outcome="queued", correlation_id=run.run_id,
                details={"owner": rule.owner, "due": _iso(due)}))
            return run, True
        data.update({"mode": found.mode, "restoreAt": _iso(found.restore_at),
                     "oldestRestorable": _iso(found.oldest_restorable)})
        data["problems"] += found.problems
        if found.problems or not rule.restore:
            return lease.save(run, "done"), False
        # The run's own name, saved before it is created: never lost, never another run's.
        data["scratch"] = scratch_id(rule, _parse(data.get("startedAt")) or run.created_at,
                                     run.run_id)
        return lease.save(run, "restore"), False
    if run.step == "restore":
        scratch = data["scratch"]
        state = svc.cosmos.state(scratch)
        if state is not None and not _owned(svc, run, scratch):
            return _foreign(lease, run, scratch), False
        if state is None:
            backup = svc.cosmos.backup(rule.account)
            source = svc.cosmos.restorable(rule.account, backup.location)
            if source is None:
                data["problems"].append("the source's restorable account disappeared")
                return lease.save(run, "cleanup"), False
            data["restoreStartedAt"] = _iso(_now())
            data["location"] = backup.location
            data.pop("restoreRefused", None)
            run = lease.save(run)
            svc.cosmos.start_restore(
                scratch, location=backup.location, source=source,
                at=_parse(data["restoreAt"]) or _now(),
                tags={SCRATCH_TAG: run.run_id[:256]}, wait_seconds=left)
            state = svc.cosmos.state(scratch)
        if state in ("Creating", "Updating"):
            state = svc.cosmos.wait(scratch, left)
        if state in ("Creating", "Updating"):
            return run, True  # still restoring: the resume timer goes on
        if state != "Succeeded":
            data["problems"].append(f"the restore ended {state or 'without an account'}")
            return lease.save(run, "cleanup"), False
        finished = _now()
        data["restoreFinishedAt"] = _iso(finished)
        begun = _parse(data.get("restoreStartedAt")) or finished
        data["restoreSeconds"] = round((finished - begun).total_seconds(), 3)
        return lease.save(run, "verify"), False
    if run.step == "verify":
        t0 = _now()
        if svc.cosmos.state(data["scratch"]) is None:
            data["problems"].append("the scratch account was gone before it was verified")
        elif not _owned(svc, run, data["scratch"]):
            return _foreign(lease, run, data["scratch"]), False
        else:
            data["problems"] += verify(svc, rule, data["scratch"],
                                       _parse(data["restoreAt"]) or t0)
        data["verifiedAt"] = _iso(_now())
        data["rtoSeconds"] = round(((_now()) - (_parse(data.get("restoreStartedAt"))
                                                or t0)).total_seconds(), 3)
        return lease.save(run, "cleanup"), False
    if run.step == "cleanup":
        scratch = data["scratch"]
        if data.get("scratchForeign"):
            return lease.save(run, "done"), False  # not this run's: never deleted by it
        if svc.cosmos.state(scratch) is not None:
            if not _owned(svc, run, scratch):
                return _foreign(lease, run, scratch), False
            if not svc.cosmos.delete(scratch, left):
                return run, True  # deletion still running: resumed later
        data["scratchDeletedAt"] = _iso(_now())
        return lease.save(run, "done"), False
    if run.step == "done":
        # An error a timer kept (RETRYING_ERROR) while this step could not be saved is over.
        _settle_retrying(data, gave_up=False)
        run.status = "failed" if data["problems"] else "succeeded"
        data["finishedAt"] = _iso(_now())
        run = lease.save(run)  # the lease ends with the run; audited once, by its winner
        svc.audit.append(AuditRecord(
            actor=data["actor"], action="recovery.drill", target=f"drill/{rule.name}",
            outcome="failed" if data["problems"] else "succeeded", correlation_id=run.run_id,
            details={k: data.get(k) for k in (
                "account", "scratch", "restoreAt", "restoreSeconds", "rtoSeconds",
                "scratchDeletedAt", "problems")}))
        check_drills(svc)
        return run, False
    return run, True


def verify(svc: RecoveryServices, rule: DrillRule, scratch: str, at: datetime) -> list[str]:
    problems: list[str] = []
    source_containers = svc.cosmos.containers(rule.account)
    restored = svc.cosmos.containers(scratch)
    missing = sorted(source_containers - restored)
    if missing:
        problems.append(f"containers missing after the restore: {', '.join(missing[:10])}")
    before = svc.cosmos.item_counts(rule.account, at)
    after = svc.cosmos.item_counts(scratch, _now())
    for name, count in sorted(before.items()):
        got = after.get(name)
        if got is None:
            problems.append(f"{name}: no item count for the restored container")
            continue
        limit = count * rule.tolerance_percent / 100
        if abs(got - count) > limit:
            problems.append(f"{name}: {got:g} items restored, {count:g} at the restore point "
                            f"(tolerance {rule.tolerance_percent:g}%)")
    return problems


def complete_manual(svc: RecoveryServices, rule: DrillRule, actor: str, outcome: str,
                    rto_minutes: float | None, note: str) -> RunRecord:
    run = active_run(svc, rule.name)
    if run is None or run.status != "waiting-manual":
        raise InvalidInput("manualOutcome", f"drill {rule.name} has no manual step waiting")
    run.data.update({"finishedAt": _iso(_now()), "completedBy": actor, "note": note[:500],
                     "rtoSeconds": rto_minutes * 60 if rto_minutes is not None else None})
    if outcome != "passed":
        run.data["problems"].append(f"the manual restore {outcome}: {note[:200]}")
    run.status = "succeeded" if outcome == "passed" else "failed"
    run = _save(svc, run, "done")
    svc.audit.append(AuditRecord(
        actor=actor, action="recovery.drill", target=f"drill/{rule.name}",
        outcome="succeeded" if outcome == "passed" else "failed", correlation_id=run.run_id,
        details={"mode": "manual", "rtoSeconds": run.data["rtoSeconds"]}))
    check_drills(svc)
    return run


def drill_view(svc: RecoveryServices, rule: DrillRule, *, now: datetime | None = None,
               runs: list[RunRecord] | None = None) -> dict[str, Any]:
    now = now or _now()
    runs = runs if runs is not None else runs_of(svc, rule.name)
    last = runs[-1] if runs else None
    finished = [r for r in runs if r.status in ("succeeded", "failed")]
    last_done = finished[-1] if finished else None
    good = [r for r in finished if r.status == "succeeded"]
    since = good[-1].created_at if good else None
    due = (since + timedelta(days=rule.every_days)) if since else now
    problems: list[str] = []
    if last_done is not None and last_done.status == "failed":
        problems.append("last drill failed: " + "; ".join(last_done.data.get("problems", []))[:300])
    if since is None or now > due + timedelta(days=rule.grace_days):
        problems.append(f"overdue: no successful drill in {rule.every_days + rule.grace_days} "
                        "days" if since else "overdue: never succeeded")
    if last is not None and last.status == "running" and last.data.get("problems"):
        # A run still going with a problem: a step retried after a transient error.
        problems.append(f"run {last.run_id} at step {last.step}: "
                        + "; ".join(last.data["problems"])[:300])
    if last is not None and last.status == "waiting-manual":
        manual_due = _parse(last.data.get("due"))
        if manual_due and now > manual_due:
            problems.append(f"manual restore step overdue since {manual_due:%Y-%m-%d} "
                            f"(owner {last.data.get('owner')})")
    return {
        "name": rule.name, "account": rule.account,
        "lastRun": last.run_id if last else None,
        "status": last.status if last else "never-run",
        "step": last.step if last else None,
        "lastResult": last_done.status if last_done else None,
        "lastFinishedAt": last_done.data.get("finishedAt") if last_done else None,
        "rtoSeconds": last_done.data.get("rtoSeconds") if last_done else None,
        "restoreSeconds": last_done.data.get("restoreSeconds") if last_done else None,
        "scratch": last.data.get("scratch") if last else None,
        "owner": rule.owner, "nextDue": _iso(due), "problems": problems,
        "manual": ({"owner": last.data.get("owner"), "due": last.data.get("due"),
                    "supportCase": last.data.get("supportCase")}
                   if last is not None and last.status == "waiting-manual" else None),
    }


def check_drills(svc: RecoveryServices) -> CheckResult:
    """The `drills` check: one grouped alert for every failed or overdue drill."""
    check = CheckResult("drills", "Restore drills")
    by_drill: dict[str, list[RunRecord]] = {}
    for run in svc.state.list_runs(KIND):
        by_drill.setdefault(str(run.data.get("drill")), []).append(run)
    for rule in svc.policy.drills:
        runs = sorted(by_drill.get(rule.name, []), key=lambda r: r.created_at)
        view = drill_view(svc, rule, runs=runs)
        check.results.append(ResourceResult(f"drill/{rule.name}", view["problems"],
                                            {"status": view["status"]}))
    return report(svc, check) if check.results else check


def _keep_error(svc: RecoveryServices, run_id: str, error: str) -> str | None:
    """Keep a timer's error in the stored run's problems (the latest replaces the one before;
    each stays in `retried`) while the run is running and nobody holds it: the step it was
    at, or None when it could not be kept there."""
    try:
        run = svc.state.get_run(KIND, run_id)
        if run is None or run.status != "running" or _leased(run):
            return None  # finished (its result stands) or another worker advances it now
        problems = [p for p in run.data.get("problems") or [] if not p.startswith(RETRYING_ERROR)]
        run.data["problems"] = [*problems, f"{RETRYING_ERROR}at step {run.step}: {error}"]
        run.data["retried"] = [*(run.data.get("retried") or []), {
            "step": run.step, "call": "timer", "reason": error, "at": _iso(_now())},
        ][-MAX_RETRIED:]
        svc.state.save_run(run)
        return run.step
    except Exception as exc:  # the log and the audit still say it
        log.error("drill run %s: the error could not be kept in the run (%s)", run_id,
                  error_summary(exc, with_message=False))
        return None


def _timer_failed(svc: RecoveryServices, timer: str, actor: str, drill: str,
                  run_id: str | None, exc: Exception) -> None:
    """One drill's unexpected error in a timer: logged, kept in its run, audited; the timer
    goes on with the other drills."""
    error = error_summary(exc, with_message=False)
    log.error("%s: drill %s run %s failed: %s; going on with the other drills", timer, drill,
              run_id or "(none)", error)
    step = _keep_error(svc, run_id, error) if run_id else None
    try:
        svc.audit.append(AuditRecord(
            actor=actor, action="recovery.drill.error", target=f"drill/{drill}",
            outcome="failed", correlation_id=run_id or drill,
            details={"timer": timer, "run": run_id, "step": step, "error": error}))
    except Exception as audit_exc:
        log.error("%s: drill %s run %s: the failure could not be audited (%s)", timer, drill,
                  run_id or "(none)", error_summary(audit_exc, with_message=False))


def _due(svc: RecoveryServices, rule: DrillRule) -> bool:
    runs = runs_of(svc, rule.name)
    if any(r.status in ACTIVE for r in runs):
        return False
    recent = [r for r in runs if r.status == "succeeded"
              or _now() - r.created_at < timedelta(days=1)]
    return not (recent and _now() - recent[-1].created_at < timedelta(days=rule.every_days))


def run_due(svc: RecoveryServices, actor: str) -> list[str]:
    """Timer: start every drill whose last successful run is `every_days` old (monthly by
    default), advance it within the budget, then check overdue and failed drills. Each drill
    on its own: one that fails is logged, kept in its run and audited, and the others go on;
    DrillTimerFailed at the end when every drill it tried failed."""
    started: list[str] = []
    failed: list[str] = []
    busy = 0
    for rule in svc.policy.drills:
        run: RunRecord | None = None
        try:
            if not _due(svc, rule) or svc.plan_only:
                continue
            run = start(svc, rule, actor)
            advance(svc, rule, run)
        except RetryLater:  # another instance starts or advances it (DrillBusy, StaleRun)
            busy += 1
            continue
        except Exception as exc:  # one drill's failure never stops the others
            failed.append(run.run_id if run else rule.name)
            _timer_failed(svc, "run_due_drills", actor, rule.name,
                          run.run_id if run else None, exc)
            continue
        started.append(run.run_id)
    try:
        check_drills(svc)
    except Exception as exc:  # raised below, once everything else is done
        log.error("run_due_drills: the drills check failed: %s",
                  error_summary(exc, with_message=False))
        if not (failed and not started and not busy):
            raise
        raise DrillTimerFailed("run_due_drills", failed) from exc
    if failed and not started and not busy:
        raise DrillTimerFailed("run_due_drills", failed)
    return started


def resume(svc: RecoveryServices, actor: str | None = None) -> list[str]:
    """Timer: advance every running drill (a crash or a long restore left it running). Each
    run on its own: one that fails is logged, kept in its run and audited, and the others go
    on; then the `drills` check alerts it. DrillTimerFailed at the end when every run it tried
    failed."""
    moved: list[str] = []
    failed: list[str] = []
    busy = 0
    for run in list(svc.state.list_runs(KIND, status="running")):
        drill = str(run.data.get("drill"))
        rule = svc.policy.drill(drill)
        if rule is None:
            continue
        try:
            advance(svc, rule, run)
        except RetryLater:  # another worker holds the run's lease (DrillBusy) or moved it
            busy += 1
            continue
        except Exception as exc:  # one run's failure never stops the others
            failed.append(run.run_id)
            _timer_failed(svc, "resume_drills", actor or app_identity(), drill, run.run_id,
                          exc)
            continue
        moved.append(run.run_id)
    if failed:  # alerted now, not at the next daily check (one notification a day)
        try:
            check_drills(svc)
        except Exception as exc:
            log.error("resume_drills: the drills check failed: %s",
                      error_summary(exc, with_message=False))
    if failed and not moved and not busy:
        raise DrillTimerFailed("resume_drills", failed)
    return moved
