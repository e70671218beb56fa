"""The rotation engine: each rotation is a persisted state machine, advanced one idempotent step
at a time, resumable after a crash at any point.

A run is keyed by (vault, secret, the version that triggered it), so a duplicate or concurrent
delivery finds the run that exists instead of starting another one, and an event about a version
that is no longer the latest ends as `skipped` without touching anything.

Steps (dual-key strategies: Cosmos DB, Storage, Service Bus, Event Hubs):

    prepare  read the current version; superseded? within the grace period? which of the two keys
             does it hold (by value, read back from the provider; the tag is a hint)
    store    regenerate the OTHER key at the provider; the provider now holds the pending
             credential, which no secret version points to, so no consumer reads it
    test     read that key back from the provider and prove it with a signed data-plane call
    promote  write it as the new secret version, tagged, with an expiry
    refresh  publish pitcrew.SecretRotated, restart the sites the policy lists
    done

Generated credentials (`strategy: generated`) store the generated value in a separate pending
secret, `apply` it through the hook, `test` it, and only then promote it. A generated run that
fails disables its pending version and, when the hook took the value (`apply` was called) but the
vault never promoted it, calls the hook's optional `rollback(target, value)`.

Emergency rotation (`force`, an operator's request with a reason) skips the grace period. With
`both` (dual-key only) the run goes on after `refresh`:

    settle   wait the grace period, so consumers move to the new version
    first    regenerate the key the triggering version held (never the one the latest holds)
    retire   disable every version holding a key that was regenerated (it cannot authenticate)

Each step takes a lease on the run (an ETag-conditional write) before any side effect, so of any
number of instances exactly one performs it; effects are re-checked on resume (the key to
regenerate is fingerprinted before the call, the promoted version carries the run id), so a crash
between an effect and its bookkeeping never repeats the effect. The key the current version holds
is never regenerated: the engine checks it by value immediately before the call.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pitcrew import state as state_module
from pitcrew.audit import AuditRecord, app_identity
from pitcrew.bootstrap import Services
from pitcrew.errors import InvalidInput, RetryLater
from pitcrew.rotation import consumers, messages, tags
from pitcrew.rotation.hooks import (
    CredentialHook,
    generate_password,
    get_hook,
    load_hook_modules,
    rollback_of,
)
from pitcrew.rotation.policy import DUAL_KEY_STRATEGIES, PasswordPolicy
from pitcrew.rotation.ports import (
    CredentialProvider,
    CredentialRejected,
    ProviderRefused,
    RotationPorts,
    SecretVersion,
    VaultUnavailable,
)
from pitcrew.state import RunRecord, StaleRun

log = logging.getLogger(__name__)

RUN_KIND = "rotation"
STEPS_DUAL = ("prepare", "store", "test", "promote", "refresh", "done")
STEPS_BOTH = ("prepare", "store", "test", "promote", "refresh", "settle", "first", "retire", "done")
STEPS_GENERATED = ("prepare", "store", "apply", "test", "promote", "refresh", "done")
TERMINAL = ("succeeded", "failed", "skipped")
# What a request joining an existing run writes into it (`start`): the only fields anyone but
# the lease holder writes while a step runs, so the holder adopts them when its save conflicts.
REQUEST_FIELDS = ("force", "both", "requested_by", "correlation_id", "reason")
SAVE_TRIES = 20  # conflicting writes in a row before a request leaves the run to the others
EVENT_TYPE = "pitcrew.SecretRotated"
EVENT_SOURCE = "/pitcrew/rotation"


class RotationStopped(Exception):
    """A step decided the run cannot go on (not a transient failure): it ends with an alert."""

    def __init__(self, reason: str, *, status: str = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class RunBusy(RetryLater):
    """Another request or instance holds the run's current step (its lease) and advances the
    run; this one leaves it alone. Not a failure: `run` is the run as it was last read, for an
    answer that says it is in progress."""

    def __init__(self, run: RunRecord, message: str) -> None:
        super().__init__(message)
        self.run = run


class RotationStepFailed(RuntimeError):
    """A step failed and will be retried; the message names the run, step and error type only."""


class RotationWaits(Exception):
    """The run must wait (the grace period): the timer resumes it at `until`. `kind` and `since`
    let the wait be recomputed from the policy in force: `until = since + grace period`."""

    def __init__(self, until: datetime, reason: str, *, kind: str = "grace",
                 since: str | None = None) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason
        self.kind = kind
        self.since = since


def run_id_for(vault: str, secret: str, version: str) -> str:
    return f"{vault.lower()}/{secret.lower()}@{version.lower()}"


def same_version(one: str | None, other: str | None) -> bool:
    """Key Vault versions are hex that Key Vault writes in lower case; an event or a run
    recorded before versions were normalised may name one in upper case: the same version."""
    return (one or "").lower() == (other or "").lower()


def adopt_request(data: dict[str, Any], fresh: Mapping[str, Any]) -> None:
    """Take into `data` (a run's, as its lease holder has it) what a request that joined the
    run wrote meanwhile (`fresh`, the run as stored): REQUEST_FIELDS, nothing else."""
    for key in REQUEST_FIELDS:
        if key in fresh:
            data[key] = fresh[key]


def fingerprint(value: str) -> str:
    """A one-way, short fingerprint: tells two key values apart, reveals nothing about them."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _now() -> datetime:
    return state_module.utcnow()


def describe_error(exc: BaseException, sensitive: Iterable[str] = ()) -> str:
    """A one-line description of a failure, with every known secret value scrubbed from it."""
    status = getattr(exc, "status_code", None)
    text = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")
    message = str(exc)
    # Scrub the whole message before cutting it: a value across the cut (or a line break)
    # would otherwise keep its first part. Longest first, so a value that contains another
    # is not left half-scrubbed.
    for value in sorted({v for v in sensitive if v}, key=len, reverse=True):
        message = message.replace(value, "[redacted]")
    lines = message.splitlines()
    message = lines[0][:300] if lines else ""
    return f"{text}: {message}" if message else text


class RotationEngine:
    """Advances rotation runs. `faults` is a test seam: it is called with `before:STEP`,
    `effect:STEP` (the step's effect happened, nothing recorded yet) and `after:STEP`."""

    def __init__(
        self,
        services: Services,
        ports: RotationPorts | None = None,
        *,
        faults: Callable[[str], None] | None = None,
    ) -> None:
        self.services = services
        self.policy = services.policy.rotation
        self._ports = ports
        self._faults = faults or (lambda point: None)

    @property
    def ports(self) -> RotationPorts:
        if self._ports is None:
            self._ports = self.services.rotation
        return self._ports

    # ------------------------------------------------------------------ entry points

    def start(
        self, vault: str, secret: str, version: str | None, *, actor: str, correlation_id: str,
        reason: str, target: tags.Target | None = None, retry_failed: bool = False,
        force: bool = False, both: bool = False,
    ) -> RunRecord:
        """Create (or find) the run for this version and advance it as far as it goes now.
        `retry_failed` (an operator's explicit request) restarts a failed run from `prepare`,
        or resumes it at the step that failed when it had promoted the latest version (its
        consumers are told, not a new rotation started). `force` (an emergency, with a reason)
        skips the grace period; `both` (dual-key) also regenerates the key the triggering
        version holds, a grace period after promotion."""
        state = self.services.state
        resumable: RunRecord | None = None
        if not version:
            current = self.ports.secrets.latest(vault, secret)
            if current is None:
                raise InvalidInput("secret", f"{vault}/{secret} does not exist")
            version = current.version
            if retry_failed and not force:
                # An emergency wants a new credential now; anything else finishes the run
                # that promoted the latest version and failed after it.
                resumable = self._failed_after_promoting(vault, secret, current)
        # One spelling (Key Vault's): every later comparison with the vault's answer is exact.
        version = version.lower()
        target = target or tags.owner(self.policy, self.ports.secrets, vault, secret)
        if target is None or target.strategy == "notify":
            raise InvalidInput("secret", f"no rotation strategy owns {vault}/{secret}")
        if resumable is not None:
            return self.advance(self._join(
                resumable.run_id, actor=actor, correlation_id=correlation_id, reason=reason,
                retry_failed=True, force=force, both=both, resume=True))
        run_id = run_id_for(vault, secret, version)
        run = RunRecord(
            kind=RUN_KIND, run_id=run_id, step="prepare", status="running",
            data={
                "vault": vault, "secret": secret, "trigger_version": version,
                "strategy": target.strategy, "source": target.source,
                "resource": target.resource, "hook": target.hook,
                "hook_target": target.hook_target,
                "password": target.password.model_dump(),
                "validity_days": target.validity_days,
                "restart_sites": list(target.restart_sites),
                "consumers": [list(c) for c in target.consumers],
                "requested_by": actor, "correlation_id": correlation_id, "reason": reason,
                "attempts": 0, "history": [], "force": force, "both": both,
            },
        )
        created = state.create_run(run)
        if created is None:
            run = self._join(run_id, actor=actor, correlation_id=correlation_id, reason=reason,
                             retry_failed=retry_failed, force=force, both=both)
        else:
            run = created
            self._audit(run, "rotation.started", "succeeded",
                        {"reason": reason, "force": force, "both": both})
            if force:
                self._audit(run, "rotation.forced", "succeeded", {"reason": reason, "both": both})
        return self.advance(run)

    def _join(self, run_id: str, *, actor: str, correlation_id: str, reason: str,
              retry_failed: bool, force: bool, both: bool, resume: bool = False) -> RunRecord:
        """The run that exists for this version, with this request taken into it: a failed run
        restarts (`retry_failed`), or resumes at the step that failed when it promoted a
        version (`resume`: the latest version is the one it promoted); a run skipped while its
        version is still the latest (a version once compared in the wrong case) restarts for
        any request; an emergency (`force`/`both`) is recorded on a run that goes on. Each
        write is ETag-conditional: when another request or instance wrote the run in between,
        the run is read again and the request applied to what it holds now. Only
        REQUEST_FIELDS are written to a running run, so a step in progress elsewhere keeps its
        lease and adopts them when it saves."""
        state = self.services.state
        run: RunRecord | None = None
        for _ in range(SAVE_TRIES):
            run = state.get_run(RUN_KIND, run_id)
            if run is None:  # deleted in between: extremely unlikely, let the caller retry
                raise RetryLater(f"rotation run {run_id} vanished; retry")
            try:
                if retry_failed and run.status == "failed" and (
                        resume or run.data.get("new_version")):
                    # Its version is promoted: starting over would find it superseded (and a
                    # new run of the new version would wait out the grace period), so the
                    # step that failed is done again; each step's effects are idempotent.
                    step = self._resume(run, actor=actor, correlation_id=correlation_id,
                                        reason=reason, both=both)
                    run = state.save_run(run)
                    self._audit(run, "rotation.retried", "succeeded",
                                {"reason": reason, "resumedAt": step})
                elif retry_failed and run.status == "failed":
                    self._restart(run, actor=actor, correlation_id=correlation_id,
                                  reason=reason, force=force, both=both)
                    run = state.save_run(run)
                    self._audit(run, "rotation.retried", "succeeded", {"reason": reason})
                elif run.status == "skipped" and self._still_latest(run):
                    # "No longer the latest" was wrong (nothing else ends a run skipped while
                    # its version is the latest): the run was never done, so it starts again
                    # rather than answer `skipped` to every request from now on.
                    self._restart(run, actor=actor, correlation_id=correlation_id,
                                  reason=reason, force=force, both=both)
                    run = state.save_run(run)
                    self._audit(run, "rotation.retried", "succeeded",
                                {"reason": reason, "was": "skipped"})
                elif (force or both) and run.status in ("running", "waiting"):
                    # An emergency request about a run that exists: it takes over the request.
                    run.data.update(force=force or bool(run.data.get("force")),
                                    both=both or bool(run.data.get("both")),
                                    requested_by=actor, correlation_id=correlation_id,
                                    reason=reason)
                    run = state.save_run(run)
            except StaleRun:
                continue  # written meanwhile: read it again, apply the request to that
            log.info("rotation %s exists (%s at %s): resuming, not restarting",
                     run_id, run.status, run.step)
            if force and run.status not in TERMINAL:
                self._audit(run, "rotation.forced", "succeeded",
                            {"reason": reason, "both": bool(run.data.get("both"))})
            return run
        assert run is not None
        raise RunBusy(run, f"rotation {run_id} is in progress: it changed {SAVE_TRIES} times "
                           "while this request tried to join it; it goes on without this "
                           "request's changes (`pitcrew rotations` shows how it ends)")

    def _failed_after_promoting(self, vault: str, secret: str,
                                current: SecretVersion) -> RunRecord | None:
        """The failed run that promoted `current` (the latest version names its run in a tag),
        when it failed at or after `promote`: the run to resume rather than start a new one."""
        promoted_by = current.tags.get(tags.RUN)
        if not promoted_by or promoted_by == run_id_for(vault, secret, current.version):
            return None
        run = self.services.state.get_run(RUN_KIND, promoted_by)
        if run is None or run.status != "failed":
            return None
        d = run.data
        if (str(d.get("vault")).lower(), str(d.get("secret")).lower()) != (vault.lower(),
                                                                           secret.lower()):
            return None  # a tag copied from elsewhere names another secret's run
        if d.get("new_version") and not same_version(d["new_version"], current.version):
            return None
        steps = STEPS_BOTH if d.get("both") else (
            STEPS_GENERATED if d.get("strategy") == "generated" else STEPS_DUAL)
        failed_step = str(d.get("failed_step") or run.step)
        if failed_step not in steps or steps.index(failed_step) < steps.index("promote"):
            return None
        return run

    @staticmethod
    def _resume(run: RunRecord, *, actor: str, correlation_id: str, reason: str,
                both: bool) -> str:
        """Set a run that failed after promoting to do its failed step again (saved by the
        caller); what it recorded as done (published, refreshed, retired) stays done."""
        step = str(run.data.get("failed_step") or run.step)
        for key in ("lease_until", "failed_step", "outcome", "last_error",
                    "vault_unavailable", "promotion_unknown"):
            run.data.pop(key, None)
        run.data.update(attempts=0, requested_by=actor, correlation_id=correlation_id,
                        reason=reason, retries=int(run.data.get("retries", 0)) + 1,
                        both=both or bool(run.data.get("both")))
        run.status, run.step = "running", step
        return step

    def _still_latest(self, run: RunRecord) -> bool:
        """Whether the run's triggering version is the secret's latest version now."""
        d = run.data
        current = self.ports.secrets.latest(d["vault"], d["secret"])
        return current is not None and same_version(current.version, d["trigger_version"])

    @staticmethod
    def _restart(run: RunRecord, *, actor: str, correlation_id: str, reason: str, force: bool,
                 both: bool) -> None:
        """Set an ended run to start again from `prepare` (saved by the caller). Everything is
        re-derived from the vault and the provider in prepare."""
        for key in ("regenerated", "before_fingerprint", "lease_until", "failed_step",
                    "outcome", "last_error", "pending_version", "pending_disabled",
                    "apply_called", "rolled_back", "wait", "not_before", "wait_reason",
                    "first_fingerprint", "first_regenerated", "retired", "vault_unavailable",
                    "tags_dropped", "tags_omitted", "promotion_unknown"):
            run.data.pop(key, None)
        run.data.update(attempts=0, requested_by=actor, correlation_id=correlation_id,
                        reason=reason, retries=int(run.data.get("retries", 0)) + 1,
                        force=force or bool(run.data.get("force")),
                        both=both or bool(run.data.get("both")),
                        # A run recorded before versions were normalised: Key Vault's spelling.
                        trigger_version=str(run.data["trigger_version"]).lower())
        run.status, run.step = "running", "prepare"

    def advance(self, run: RunRecord) -> RunRecord:
        """Run steps until the run ends, waits, or a step fails (which raises). RunBusy when
        another request or instance holds the step: that one advances the run."""
        conflicts = 0
        while run.status not in TERMINAL:
            if run.status == "waiting":
                until = self._wait_until(run)
                if _now() < until:
                    if run.data.get("not_before") != _iso(until):
                        # The policy changed since the run began waiting: say the new time.
                        run.data["not_before"] = _iso(until)
                        run.data["wait_reason"] = self._wait_reason(run, until)
                        # StaleRun: another instance has it; it recomputes the same.
                        with contextlib.suppress(StaleRun):
                            run = self.services.state.save_run(run)
                    return run
            stepped = self._step(run)
            if stepped is None:
                # Written by someone else since it was read: read it again and look afresh
                # (ended, waiting, or leased elsewhere by now).
                conflicts += 1
                fresh = self.services.state.get_run(RUN_KIND, run.run_id)
                if fresh is None:
                    raise RetryLater(f"rotation run {run.run_id} vanished; retry")
                if conflicts >= SAVE_TRIES:
                    raise RunBusy(fresh, self._busy_message(fresh))
                run = fresh
                continue
            run = stepped
        return run

    @staticmethod
    def _busy_message(run: RunRecord) -> str:
        until = run.data.get("lease_until")
        return (f"rotation {run.run_id} is in progress: another request is advancing it (step "
                f"{run.step}" + (f", held until {until}" if until else "") + "), so this one "
                "leaves it alone; `pitcrew rotations` shows how it ends (if that instance "
                "stopped, the advance_rotations timer resumes the run after the hold)")

    def _wait_until(self, run: RunRecord) -> datetime:
        """When a waiting run may go on, by the policy in force now (not when it began waiting):
        the grace period counts from the promotion it follows; `force` skips the first wait."""
        d = run.data
        wait = d.get("wait") or {}
        since = wait.get("since")
        if wait.get("kind") == "grace" and d.get("force"):
            return _now()
        if since:
            try:
                return datetime.fromisoformat(since) + timedelta(
                    hours=self.policy.grace_period_hours)
            except ValueError:
                pass
        return datetime.fromisoformat(d["not_before"])

    def _wait_reason(self, run: RunRecord, until: datetime) -> str:
        d = run.data
        wait = d.get("wait") or {}
        hours = f"{self.policy.grace_period_hours:g} h"
        if wait.get("kind") == "settle":
            return (f"consumers move to version {d.get('new_version')} for the grace period "
                    f"({hours}, until {_iso(until)}) before the key version "
                    f"{d['trigger_version']} held is regenerated")
        return (f"the grace period ({hours}) after the rotation at {wait.get('since') or '?'} "
                f"runs until {_iso(until)}")

    def resume_due(self) -> dict[str, int]:
        """The timer: advance every run that waits (and is due) or stalled after a crash."""
        counts = {"advanced": 0, "busy": 0, "failed": 0}
        state = self.services.state
        for status in ("waiting", "running"):
            for run in list(state.list_runs(RUN_KIND, status=status)):
                try:
                    self.advance(run)
                    counts["advanced"] += 1
                except RetryLater:
                    counts["busy"] += 1
                except Exception:
                    # Counted in the run; it ends with an alert after max_attempts.
                    log.warning("rotation %s: step %s failed; will retry", run.run_id, run.step)
                    counts["failed"] += 1
        return counts

    # ------------------------------------------------------------------ one step

    def _take_lease(self, run: RunRecord) -> RunRecord | None:
        """Take the step's lease: an ETag-conditional write, so of any number of requests and
        instances exactly one performs the step. RunBusy when another holds it; None when the
        run was written since it was read (the caller reads it again)."""
        now = _now()
        lease_until = run.data.get("lease_until")
        if lease_until and datetime.fromisoformat(lease_until) > now:
            raise RunBusy(run, self._busy_message(run))
        run.data["lease_until"] = _iso(now + timedelta(seconds=self.policy.step_lease_seconds))
        run.data["lease_owner"] = uuid.uuid4().hex
        if run.status == "waiting":
            run.status = "running"
        try:
            return self.services.state.save_run(run)
        except StaleRun:
            return None

    def still_ours(self, run: RunRecord, step: str) -> RunRecord | None:
        """The run as stored now, when this instance still holds `step`'s lease on it (someone
        else may only have written REQUEST_FIELDS); None when another took the step over."""
        fresh = self.services.state.get_run(RUN_KIND, run.run_id)
        if (fresh is None or fresh.step != step or fresh.status in TERMINAL
                or fresh.data.get("lease_owner") != run.data.get("lease_owner")):
            return None
        return fresh

    def _save_leased(self, run: RunRecord, step: str) -> RunRecord:
        """Save what the holder of `step`'s lease did. A request that joined the run meanwhile
        (`start` with force/both) wrote only REQUEST_FIELDS: adopt them and save again. Only a
        lost lease (another instance took the step over after this one's lapsed) is RunBusy:
        that instance redoes the step, whose effects are idempotent."""
        for _ in range(SAVE_TRIES):
            try:
                return self.services.state.save_run(run)
            except StaleRun:
                fresh = self.still_ours(run, step)
                if fresh is None:
                    now_run = self.services.state.get_run(RUN_KIND, run.run_id) or run
                    raise RunBusy(now_run, f"rotation {run.run_id}: step {step} was taken over "
                                           "by another instance after this one's hold lapsed; "
                                           "it goes on there") from None
                adopt_request(run.data, fresh.data)
                run.etag = fresh.etag
        raise RunBusy(run, self._busy_message(run))

    def _step(self, run: RunRecord) -> RunRecord | None:
        """Perform the run's current step under its lease; None when the lease could not be
        taken because the run changed since it was read."""
        leased = self._take_lease(run)
        if leased is None:
            return None
        run = leased
        step = run.step
        sensitive: list[str] = []
        self._faults(f"before:{step}")
        try:
            with _Heartbeat(self, run):
                next_step = self._handler(run, step)(run, sensitive)
        except RotationWaits as wait:
            run.status = "waiting"
            run.data["not_before"] = _iso(wait.until)
            run.data["wait_reason"] = wait.reason
            run.data["wait"] = {"kind": wait.kind, "since": wait.since}
            run.data.pop("lease_until", None)
            self._history(run, step, "waiting", wait.reason)
            run = self._save_leased(run, step)
            # Audited once the state says so: a save that lost would leave a false record.
            self._audit(run, "rotation.wait", "skipped", {"step": step, "until": _iso(wait.until),
                                                          "why": wait.reason})
            return run
        except RotationStopped as stop:
            return self._finish(run, stop.status, stop.reason, leased=step, failed_step=step)
        except VaultUnavailable as unavailable:
            # Not transient: the vault is unknown or pitcrew lacks a role on it. A person acts.
            run.data["vault_unavailable"] = {"kind": unavailable.kind, "role": unavailable.role,
                                             "detail": unavailable.detail}
            return self._finish(run, "failed", f"{unavailable}; {unavailable.action}.",
                                leased=step, failed_step=step)
        except CredentialRejected as rejected:
            error = describe_error(rejected, sensitive)
            reason = f"the provider rejected the new credential: {error}"
            return self._finish(run, "failed", reason, leased=step, failed_step=step)
        except ProviderRefused as refused:
            # Not transient: a role to grant or a lock to lift. The run stops with the action.
            return self._finish(run, "failed", describe_error(refused, sensitive), leased=step,
                                failed_step=step)
        except RetryLater:
            run.data.pop("lease_until", None)
            self._save_leased(run, step)
            raise
        except Exception as exc:
            attempts = int(run.data.get("attempts", 0)) + 1
            run.data["attempts"] = attempts
            error = describe_error(exc, sensitive)
            run.data["last_error"] = error
            if attempts >= self.policy.max_attempts:
                return self._finish(
                    run, "failed", f"step {step} failed {attempts} times; last error: {error}.",
                    leased=step, failed_step=step,
                )
            run.data.pop("lease_until", None)
            self._history(run, step, "error", error)
            self._save_leased(run, step)
            self._audit(run, f"rotation.{step}", "failed", {"attempt": attempts, "error": error})
            message = (f"rotation {run.run_id} step {step} failed (attempt {attempts} of "
                       f"{self.policy.max_attempts}; the platform or the advance_rotations timer "
                       f"retries it): {error}")
            log.warning("%s", message)
            # Re-raised scrubbed: the original message may quote what the provider sent back.
            raise RotationStepFailed(message) from None
        self._faults(f"effect:{step}")
        details = self._step_details(run, step)
        self._history(run, step, "done")
        run.data.pop("lease_until", None)
        if next_step == "done":
            run.step = "done"
            return self._finish(run, "succeeded", "rotated", leased=step, step_details=details)
        run.step = next_step
        run = self._save_leased(run, step)
        # Audited once saved, by the holder of the lease only: never a step "succeeded" whose
        # state a lost race threw away (the step would be done again, and audited again).
        self._audit(run, f"rotation.{step}", "succeeded", details)
        log.info("rotation %s: %s done, next %s", run.run_id, step, next_step)
        self._faults(f"after:{step}")
        return run

    def _handler(self, run: RunRecord, step: str) -> Callable[[RunRecord, list[str]], str]:
        generated = run.data["strategy"] == "generated"
        handlers: dict[str, Callable[[RunRecord, list[str]], str]] = {
            "prepare": self._prepare,
            "store": self._store_generated if generated else self._store_dual,
            "apply": self._apply_generated,
            "test": self._test_generated if generated else self._test_dual,
            "promote": self._promote,
            "refresh": self._refresh,
            "settle": self._settle,
            "first": self._regenerate_first,
            "retire": self._retire_step,
        }
        return handlers[step]

    # ------------------------------------------------------------------ steps

    def _current(self, run: RunRecord, sensitive: list[str]) -> SecretVersion:
        d = run.data
        current = self.ports.secrets.latest(d["vault"], d["secret"])
        if current is None:
            raise RotationStopped(f"secret {d['vault']}/{d['secret']} no longer exists.")
        if not current.enabled:
            raise RotationStopped(
                f"the current version {current.version} of {d['vault']}/{d['secret']} is "
                "disabled, so pitcrew cannot read which credential is in use; enable it or write "
                "a current version, then retry.")
        if current.value:
            sensitive.append(current.value)
        return current

    def _provider(self, run: RunRecord) -> CredentialProvider:
        strategy = run.data["strategy"]
        try:
            return self.ports.providers[strategy]
        except KeyError:
            raise RotationStopped(f"no credential provider for strategy {strategy}.") from None

    def _prepare(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        current = self._current(run, sensitive)
        if not same_version(current.version, d["trigger_version"]):
            raise RotationStopped(
                f"version {d['trigger_version']} is no longer the latest ({current.version} is); "
                "nothing to do.", status="skipped",
            )
        rotated_at = current.tags.get(tags.ROTATED_AT)
        if rotated_at and not d.get("force"):
            try:
                until = datetime.fromisoformat(rotated_at) + timedelta(
                    hours=self.policy.grace_period_hours)
            except ValueError:
                until = None
            if until is not None and _now() < until:
                raise RotationWaits(
                    until, f"the grace period ({self.policy.grace_period_hours:g} h) after the "
                    f"rotation at {rotated_at} runs until {_iso(until)}; `pitcrew rotate --force "
                    "--reason ...` rotates now", kind="grace", since=rotated_at)
        if d["strategy"] == "generated":
            self._hook(run)  # a missing hook (or a module that failed to import) stops the run
            return "store"
        provider = self._provider(run)
        keys = provider.list_keys(d["resource"])
        sensitive.extend(keys.values())
        held = self._held_slot(provider, keys, current)
        other = provider.key_slots[1 - provider.key_slots.index(held)]
        d["holds"] = tags.SLOT_NAMES[provider.key_slots.index(held)]
        d["regenerate"] = tags.SLOT_NAMES[provider.key_slots.index(other)]
        d["regenerate_slot"] = other
        d["before_fingerprint"] = fingerprint(keys[other])
        if current.tags.get(tags.KEY) and current.tags[tags.KEY] != d["holds"]:
            log.warning("rotation %s: tag %s says %s but the value is the %s key; trusting the "
                        "value", run.run_id, tags.KEY, current.tags[tags.KEY], d["holds"])
        return "store"

    def _held_slot(self, provider: CredentialProvider, keys: Mapping[str, str],
                   current: SecretVersion) -> str:
        held = [slot for slot in provider.key_slots if keys.get(slot) == current.value]
        if len(held) != 1:
            raise RotationStopped(
                f"version {current.version} holds neither of the resource's keys, so pitcrew "
                "cannot tell which key is in use and will not regenerate either (check the "
                f"{tags.RESOURCE} tag / policy resource, or store a current key as a new version)."
            )
        return held[0]

    def _store_dual(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        provider = self._provider(run)
        current = self._current(run, sensitive)
        if not same_version(current.version, d["trigger_version"]):
            raise RotationStopped(
                f"version {current.version} was written while rotating; stopping before "
                "regenerating anything.", status="skipped",
            )
        keys = provider.list_keys(d["resource"])
        sensitive.extend(keys.values())
        slot = d["regenerate_slot"]
        if self._held_slot(provider, keys, current) == slot:
            # The guard the whole design rests on: never regenerate the key in use.
            raise RotationStopped(f"the {d['regenerate']} key is the one in use; refusing to "
                                  "regenerate it.")
        if d.get("regenerated") or fingerprint(keys[slot]) != d["before_fingerprint"]:
            d["regenerated"] = True  # done before a crash: never regenerate twice
            return "test"
        provider.regenerate(d["resource"], slot)
        d["regenerated"] = True
        return "test"

    def _new_dual_value(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        keys = self._provider(run).list_keys(d["resource"])
        sensitive.extend(keys.values())
        value = keys[d["regenerate_slot"]]
        if fingerprint(value) == d["before_fingerprint"]:
            raise RotationStopped("the provider still returns the key as it was before "
                                  "regeneration.")
        return value

    def _test_dual(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        value = self._new_dual_value(run, sensitive)
        self._provider(run).test(d["resource"], d["regenerate_slot"], value)
        return "promote"

    def _pending_name(self, run: RunRecord) -> str:
        return f"{run.data['secret']}{self.policy.pending_suffix}"

    def _pending_value(self, run: RunRecord, sensitive: list[str]) -> str:
        pending = self.ports.secrets.latest(run.data["vault"], self._pending_name(run))
        if (pending is None or not pending.enabled or pending.tags.get(tags.RUN) != run.run_id
                or not pending.value):
            raise RotationStopped("the pending credential of this run is missing from the vault.")
        sensitive.append(pending.value)
        return pending.value

    def _registered_hook(self, name: str) -> CredentialHook:
        """The hook a generated run names, once the policy's hook modules are imported. A module
        that fails to import never raises here: only a rule that needs a hook it would have
        registered fails (LookupError naming the module)."""
        load_hook_modules(self.policy.hook_modules)
        return get_hook(name)

    def _hook(self, run: RunRecord) -> CredentialHook:
        try:
            return self._registered_hook(run.data["hook"])
        except LookupError as missing:
            # Not transient (the module is what it is until the next deployment): alert now.
            raise RotationStopped(f"{missing}.") from None

    def _store_generated(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        name = self._pending_name(run)
        pending = self.ports.secrets.latest(d["vault"], name)
        # A disabled pending version (promoted or discarded by an earlier run) holds no value
        # anyone may use: this run writes its own.
        if pending is not None and pending.enabled and pending.tags.get(tags.RUN) == run.run_id:
            # Stored before a crash: keep that value (the hook may have it) and its version.
            d["pending_version"] = pending.version
            return "apply"
        # The pending secret holds the credential the secret will: the same content type and
        # user tags (its owner, say) as the current version, next to pitcrew's own.
        current = self._current(run, sensitive)
        fitted = self._fit_tags(run, {tags.RUN: run.run_id, tags.PENDING_FOR: d["secret"]},
                                current, name)
        value = generate_password(PasswordPolicy.model_validate(d["password"]))
        sensitive.append(value)
        written = self.ports.secrets.set(
            d["vault"], name, value, tags=fitted,
            expires_on=_now() + timedelta(days=float(d["validity_days"])),
            content_type=current.content_type,
        )
        d["pending_version"] = written.version
        return "apply"

    def _apply_generated(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        hook = self._hook(run)
        value = self._pending_value(run, sensitive)
        d["apply_called"] = True  # from here on the provider may hold the value: roll back
        hook.apply(d.get("hook_target") or "", value)
        return "test"

    def _test_generated(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        self._hook(run).test(d.get("hook_target") or "", self._pending_value(run, sensitive))
        return "promote"

    def _promote(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        current = self._current(run, sensitive)
        if current.tags.get(tags.RUN) == run.run_id:
            self._adopt_promoted(run, current)  # promoted before a crash or a lost answer
            return "refresh"
        if not same_version(current.version, d["trigger_version"]):
            raise RotationStopped(
                f"version {current.version} was written by someone else while rotating; the new "
                "credential is not promoted. Check which key that version holds."
            )
        now = _now()
        until = now + timedelta(days=float(d["validity_days"]))
        new_tags: dict[str, str] = {
            tags.STRATEGY: d["strategy"],
            tags.VALID_FROM: _iso(now),
            tags.VALID_UNTIL: _iso(until),
            tags.ROTATED_AT: _iso(now),
            tags.RUN: run.run_id,
        }
        if d["strategy"] == "generated":
            value = self._pending_value(run, sensitive)
            new_tags[tags.HOOK] = d["hook"]
            if d.get("hook_target"):
                new_tags[tags.TARGET] = str(d["hook_target"])[:256]
        else:
            value = self._new_dual_value(run, sensitive)
            new_tags[tags.RESOURCE] = d["resource"]
            new_tags[tags.KEY] = d["regenerate"]
            new_tags.update(tags.carried_forward(current.tags, d))  # Azure samples' tags
        # The new version is the same secret to everyone reading it: it keeps the current
        # version's content type and user tags; pitcrew's own tags are set fresh.
        written = self.ports.secrets.set(
            d["vault"], d["secret"], value,
            tags=self._fit_tags(run, new_tags, current, d["secret"]), expires_on=until,
            content_type=current.content_type,
        )
        d["new_version"] = written.version
        d["valid_until"] = _iso(until)
        d["promoted_at"] = _iso(now)
        return "refresh"

    @staticmethod
    def _adopt_promoted(run: RunRecord, current: SecretVersion) -> None:
        """Record `current`, written by this run's promote (its tag names the run), as if the
        write had answered: the tags say when it was promoted and until when it is valid."""
        d = run.data
        d["new_version"] = current.version
        for key, tag in (("valid_until", tags.VALID_UNTIL), ("promoted_at", tags.ROTATED_AT)):
            if not d.get(key) and current.tags.get(tag):
                d[key] = current.tags[tag]

    def _fit_tags(self, run: RunRecord, own: Mapping[str, str], current: SecretVersion,
                  name: str) -> dict[str, str]:
        """`own` tags plus the current version's user tags, within Key Vault's limits (15
        tags, values of at most 256 characters), so the write never fails for its tags. What
        is left out is logged and kept in the run (names only): the promote goes on."""
        fitted = tags.for_new_version(own, current.tags,
                                      keep_first=(self.services.policy.expiry.hygiene.owner_tag,))
        if fitted.dropped:
            log.warning("rotation %s: %s keeps %d tags; Key Vault takes %d, so user tag(s) %s "
                        "of version %s were not carried over", run.run_id, name,
                        len(fitted.tags), tags.MAX_TAGS, ", ".join(fitted.dropped),
                        current.version)
            run.data["tags_dropped"] = list(fitted.dropped)
        if fitted.omitted:
            log.warning("rotation %s: tag(s) %s left off %s: the value is over %d characters, "
                        "which Key Vault refuses", run.run_id, ", ".join(fitted.omitted), name,
                        tags.MAX_TAG_VALUE)
            run.data["tags_omitted"] = list(fitted.omitted)
        return fitted.tags

    def _refresh(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        if d.get("pending_version") and not d.get("pending_disabled"):
            # The promoted version now holds the value: leave no second readable copy of it.
            self.ports.secrets.disable(d["vault"], self._pending_name(run), d["pending_version"])
            d["pending_disabled"] = True
        events = self.ports.events
        if events is not None and not d.get("published"):
            events.publish(self.rotated_event(run))
            d["published"] = True
        try:  # refresh each consumer's Key Vault references; restart where the policy asks
            consumers.refresh(self.ports.sites, d)
        except consumers.ConsumersUnconfigured as exc:
            raise RotationStopped(str(exc)) from None
        if d["strategy"] in DUAL_KEY_STRATEGIES and d.get("before_fingerprint"):
            # The regenerated key's old value no longer authenticates: retire what holds it.
            self._retire(run, {d["before_fingerprint"]}, sensitive)
        return "settle" if d.get("both") and d["strategy"] in DUAL_KEY_STRATEGIES else "done"

    # ---------------------------------------------------------- both keys (emergency)

    def _settle(self, run: RunRecord, sensitive: list[str]) -> str:
        """Wait the grace period after promotion, so consumers move to the new version before
        the key the triggering version holds is regenerated."""
        d = run.data
        since = d.get("promoted_at") or _iso(_now())
        until = datetime.fromisoformat(since) + timedelta(hours=self.policy.grace_period_hours)
        if _now() < until:
            wait = {"kind": "settle", "since": since}
            run.data["wait"] = wait
            raise RotationWaits(until, self._wait_reason(run, until), kind="settle", since=since)
        if not d.get("first_fingerprint"):
            provider = self._provider(run)
            keys = provider.list_keys(d["resource"])
            sensitive.extend(keys.values())
            first = provider.key_slots[1 - provider.key_slots.index(d["regenerate_slot"])]
            d["first_slot"] = first
            d["first_fingerprint"] = fingerprint(keys[first])
        return "first"

    def _regenerate_first(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        provider = self._provider(run)
        current = self._current(run, sensitive)
        keys = provider.list_keys(d["resource"])
        sensitive.extend(keys.values())
        slot = d["first_slot"]
        if d.get("first_regenerated") or fingerprint(keys[slot]) != d["first_fingerprint"]:
            d["first_regenerated"] = True  # done before a crash: never regenerate twice
            return "retire"
        if keys.get(slot) == current.value:
            # The same guard as the first regeneration: never the key the latest version holds.
            raise RotationStopped(f"version {current.version}, the latest, holds the key that "
                                  "was to be regenerated second; refusing to regenerate it.")
        provider.regenerate(d["resource"], slot)
        d["first_regenerated"] = True
        return "retire"

    def _retire_step(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        self._retire(run, {d["before_fingerprint"], d["first_fingerprint"]}, sensitive)
        return "done"

    def _retire(self, run: RunRecord, dead: set[str], sensitive: list[str]) -> None:
        """Disable every enabled version of the secret holding a key that was regenerated: it can
        no longer authenticate, and nobody should read it as if it could. Idempotent."""
        d = run.data
        retired = d.setdefault("retired", [])
        secrets_port = self.ports.secrets
        for version in secrets_port.versions(d["vault"], d["secret"]):
            if not version.enabled or version.version in retired:
                continue
            held = secrets_port.get(d["vault"], d["secret"], version.version)
            if held is None or not held.value:
                continue
            sensitive.append(held.value)
            if fingerprint(held.value) in dead:
                secrets_port.disable(d["vault"], d["secret"], version.version)
                retired.append(version.version)

    def rotated_event(self, run: RunRecord) -> dict[str, Any]:
        """pitcrew.SecretRotated as a CloudEvent 1.0; the id is stable so consumers dedupe."""
        d = run.data
        return {
            "specversion": "1.0",
            "id": hashlib.sha256(f"{run.run_id}|rotated".encode()).hexdigest()[:32],
            "source": EVENT_SOURCE,
            "type": EVENT_TYPE,
            "subject": f"{d['vault']}/secrets/{d['secret']}",
            "time": _iso(_now()),
            "datacontenttype": "application/json",
            "data": {
                "vault": d["vault"],
                "secret": d["secret"],
                "version": d.get("new_version"),
                "previousVersion": d["trigger_version"],
                "strategy": d["strategy"],
                "resourceId": d.get("resource"),
                "key": d.get("regenerate"),
                "validUntil": d.get("valid_until"),
                "runId": run.run_id,
            },
        }

    # ------------------------------------------------------------------ bookkeeping

    @staticmethod
    def _step_details(run: RunRecord, step: str) -> dict[str, Any]:
        d = run.data
        details: dict[str, Any] = {"step": step, "strategy": d["strategy"]}
        for key in ("resource", "holds", "regenerate", "new_version", "pending_version",
                    "restarted", "published", "tags_dropped", "tags_omitted"):
            if d.get(key) not in (None, [], ""):
                details[key] = d[key]
        return details

    @staticmethod
    def _history(run: RunRecord, step: str, outcome: str, detail: str = "") -> None:
        history = run.data.setdefault("history", [])
        entry = {"step": step, "outcome": outcome, "at": _iso(_now())}
        if detail:
            entry["detail"] = detail[:300]
        history.append(entry)
        del history[:-30]

    def _audit(self, run: RunRecord, action: str, outcome: str, details: Mapping[str, Any]) -> None:
        d = run.data
        actor = d.get("requested_by") or app_identity()
        self.services.audit.append(AuditRecord(
            actor=actor,
            action=action,
            target=f"{d['vault']}/secrets/{d['secret']}",
            outcome=outcome,  # type: ignore[arg-type]
            correlation_id=run.run_id,
            details={"version": d["trigger_version"], **details},
        ))

    def _finish(
        self, run: RunRecord, status: str, reason: str, *, leased: str, failed_step: str = "",
        step_details: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """End the run (under `leased`, the step whose lease this instance holds). The
        notification goes out before the save, so a crash between them sends it again rather
        than never; it has a stable id per run and outcome, so a receiver is told once. The
        audit records follow the save. `step_details`: the last step succeeded (audited too)."""
        d = run.data
        run.status = status
        d.pop("lease_until", None)
        if status != "succeeded":
            notes = [self._check_promoted(run) if status == "failed" and run.step == "promote"
                     and not d.get("new_version") else "", self._discard_pending(run)]
            cleanup = " ".join(n for n in notes if n)
            if cleanup:
                reason = f"{reason} {cleanup}"
        d["outcome"] = reason
        if status == "failed":
            d["failed_step"] = failed_step
            notification = messages.failed(
                run.run_id, d, reason,
                str(self.services.policy.notifications.expiry.runbook_url or "") or None,
            )
        elif status == "succeeded":
            notification = messages.rotated(run.run_id, d)
        else:
            notification = None
        dispatch_outcome = None
        if notification is not None:
            dispatch_outcome = self.services.router.send(notification).outcome
        self._history(run, failed_step or run.step, status, reason)
        run = self._save_leased(run, leased)
        if step_details is not None:
            self._audit(run, f"rotation.{leased}", "succeeded", step_details)
        self._audit(run, f"rotation.{status}", "succeeded" if status == "succeeded" else
                    ("skipped" if status == "skipped" else "failed"),
                    {"reason": reason, "step": failed_step or run.step,
                     "new_version": d.get("new_version"), "notification": dispatch_outcome})
        # The "pitcrew.rotation.<status>" prefix is what the failed-rotation alert rule in
        # infra/modules/alerts.bicep searches for: keep them in step.
        log.log(logging.ERROR if status == "failed" else logging.INFO,
                "pitcrew.rotation.%s run=%s step=%s: %s",
                status, run.run_id, failed_step or run.step, reason)
        return run

    def _check_promoted(self, run: RunRecord) -> str:
        """A run failing at `promote`: Key Vault may have written the new version though its
        answer was lost (a dropped connection on the last attempt). The latest version names
        the run that wrote it: when that is this run, the value is promoted (consumers read it)
        and must never be rolled back. When the vault cannot be read, nobody knows: the value
        is kept too (`promotion_unknown`), as rolling back a promoted value is an outage."""
        d = run.data
        try:
            current = self.ports.secrets.latest(d["vault"], d["secret"])
        except Exception as exc:
            d["promotion_unknown"] = describe_error(exc)
            return ""
        if current is None or current.tags.get(tags.RUN) != run.run_id:
            return ""
        self._adopt_promoted(run, current)
        return (f"Key Vault wrote version {current.version} all the same: it is promoted and "
                "the latest.")

    def _discard_pending(self, run: RunRecord) -> str:
        """A generated run that ends without success: the provider forgets the value (hook
        `rollback`, when `apply` was called and the value was never promoted) and the pending
        version is disabled. Returns what happened, for the outcome and the notification."""
        d = run.data
        if d.get("strategy") != "generated" or not d.get("pending_version") or d.get(
                "pending_disabled"):
            return ""
        notes: list[str] = []
        sensitive: list[str] = []
        if d.get("apply_called") and not d.get("new_version") and not d.get("rolled_back"):
            if d.get("promotion_unknown"):
                notes.append(
                    f"Whether the value was promoted could not be read "
                    f"({d['promotion_unknown']}), so hook {d['hook']} was not told to roll it "
                    f"back: if the latest version of {d['secret']} is not tagged {tags.RUN} "
                    "with this run, remove the value at the provider by hand.")
            else:
                notes.append(self._rollback(run, sensitive))
        try:
            self.ports.secrets.disable(d["vault"], self._pending_name(run), d["pending_version"])
            d["pending_disabled"] = True
            notes.append(f"Pending version {d['pending_version']} was disabled.")
        except Exception as exc:
            notes.append(f"Disabling pending version {d['pending_version']} failed "
                         f"({describe_error(exc, sensitive)}): disable it by hand.")
        return " ".join(n for n in notes if n)

    def _rollback(self, run: RunRecord, sensitive: list[str]) -> str:
        d = run.data
        try:
            hook = self._registered_hook(d["hook"])
        except LookupError:
            self._audit(run, "rotation.rollback", "skipped", {"why": "hook not registered"})
            return "The hook is not registered, so the provider was not told to drop the value."
        rollback = rollback_of(hook)
        if rollback is None:
            self._audit(run, "rotation.rollback", "skipped", {"why": "the hook has no rollback"})
            return (f"Hook {d['hook']} has no rollback, so the provider may still accept the "
                    "unpromoted value: remove it there by hand.")
        pending = self.ports.secrets.get(d["vault"], self._pending_name(run),
                                         d["pending_version"])
        if pending is None or not pending.value:
            self._audit(run, "rotation.rollback", "skipped", {"why": "pending value unreadable"})
            return "The pending value could not be read, so it was not rolled back."
        sensitive.append(pending.value)
        try:
            rollback.rollback(d.get("hook_target") or "", pending.value)
        except Exception as exc:
            error = describe_error(exc, sensitive)
            self._audit(run, "rotation.rollback", "failed", {"error": error})
            return f"Rolling the value back with hook {d['hook']} failed ({error})."
        d["rolled_back"] = True
        self._audit(run, "rotation.rollback", "succeeded", {"hook": d["hook"]})
        return f"Hook {d['hook']} rolled the unpromoted value back."

    # ------------------------------------------------------------------ plans

    def plan(self, vault: str, secret: str, version: str | None = None, *,
             force: bool = False, both: bool = False) -> dict[str, Any]:
        """What a rotation would do now, without changing anything (dry-run, mode: plan)."""
        current = self.ports.secrets.latest(vault, secret)
        if current is None:
            raise InvalidInput("secret", f"{vault}/{secret} does not exist")
        target = tags.owner(self.policy, self.ports.secrets, vault, secret, current)
        plan: dict[str, Any] = {"vault": vault, "secret": secret, "version": current.version,
                                "strategy": target.strategy if target else "notify"}
        if version and not same_version(version, current.version):
            plan["steps"] = [f"nothing: version {version} is no longer the latest"]
            return plan
        if target is None or target.strategy == "notify":
            plan["steps"] = ["notify a person: no rotation strategy owns this secret"]
            return plan
        resumable = None if version or force else self._failed_after_promoting(
            vault, secret, current)
        if resumable is not None:  # what `start` does for the same request
            step = resumable.data.get("failed_step") or resumable.step
            plan["resume"] = resumable.run_id
            plan["steps"] = [f"resume run {resumable.run_id} at step {step}, where it failed "
                             f"after promoting version {current.version}"]
            return plan
        steps: list[str] = []
        rotated_at = current.tags.get(tags.ROTATED_AT)
        if rotated_at and not force:
            until = datetime.fromisoformat(rotated_at) + timedelta(
                hours=self.policy.grace_period_hours)
            if _now() < until:
                steps.append(f"wait for the grace period until {_iso(until)}")
        elif force:
            steps.append("skip the grace period (forced)")
        days = target.validity_days
        if target.strategy == "generated":
            plan.update(hook=target.hook, target=target.hook_target)
            steps += [
                f"generate a {target.password.length}-character credential into secret "
                f"{secret}{self.policy.pending_suffix}",
                f"apply it with hook {target.hook}", f"test it with hook {target.hook}",
                f"promote it as a new version of {secret}, expiring in {days:g} days",
            ]
        else:
            provider = self.ports.providers[target.strategy]
            keys = provider.list_keys(target.resource or "")
            held = [s for s in provider.key_slots if keys.get(s) == (current.value or "")]
            plan["resource"] = target.resource
            if len(held) != 1:
                plan["holds"] = "neither key"
                steps.append("stop with an alert: the current version holds neither key")
            else:
                index = provider.key_slots.index(held[0])
                plan["holds"] = tags.SLOT_NAMES[index]
                plan["would_regenerate"] = tags.SLOT_NAMES[1 - index]
                steps += [
                    f"regenerate the {plan['would_regenerate']} key of {target.resource} "
                    f"(never the {plan['holds']} key, which version {current.version} holds)",
                    f"test it with a signed {target.strategy.split('-')[0]} data-plane call",
                    f"promote it as a new version of {secret}, expiring in {days:g} days",
                ]
        steps.append(f"publish {EVENT_TYPE}" if self.ports.events is not None else
                     f"publish nothing: no event topic is configured for {EVENT_TYPE}")
        steps += [f"refresh the Key Vault references of site {site}" + (
            " and restart it" if restart else "") for site, restart in target.consumers]
        if both and target.strategy != "generated" and plan.get("holds") in tags.SLOT_NAMES:
            steps += [
                f"wait the grace period ({self.policy.grace_period_hours:g} h)",
                f"regenerate the {plan['holds']} key too (the one version {current.version} "
                "holds)",
                "disable every version holding a regenerated key",
            ]
        plan["steps"] = steps
        return plan


def run_summary(run: RunRecord) -> dict[str, Any]:
    """What GET /api/rotations shows of a run: names, step, outcome. Never a value."""
    d = run.data
    return {
        "id": run.run_id,
        "vault": d.get("vault"),
        "secret": d.get("secret"),
        "version": d.get("trigger_version"),
        "strategy": d.get("strategy"),
        "step": run.step,
        "status": run.status,
        "outcome": d.get("outcome"),
        "holds": d.get("holds"),
        "regenerated": d.get("regenerate") if d.get("regenerated") else None,
        "newVersion": d.get("new_version"),
        "attempts": d.get("attempts", 0),
        "lastError": d.get("last_error"),
        "notBefore": d.get("not_before") if run.status == "waiting" else None,
        "waitReason": d.get("wait_reason") if run.status == "waiting" else None,
        "force": bool(d.get("force")),
        "both": bool(d.get("both")),
        "retired": d.get("retired") or [],
        "requestedBy": d.get("requested_by"),
        "reason": d.get("reason"),
        "history": d.get("history", []),
        "createdAt": run.created_at.isoformat(),
        "updatedAt": run.updated_at.isoformat(),
    }


class _Heartbeat:
    """Renews a step's lease while the step runs (every third of `step_lease_seconds`), so a
    short lease (quick recovery after a crash) never lets a second instance into a long step.
    It saves a snapshot of the run with the new lease and hands the ETag back; a request that
    joined the run meanwhile (its REQUEST_FIELDS) is adopted, not overwritten; it stops (and the
    step's own save then fails) if another instance took the step over."""

    def __init__(self, engine: RotationEngine, run: RunRecord) -> None:
        self.engine = engine
        self.run = run
        self.interval = max(float(engine.policy.step_lease_seconds) / 3, 0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease:{run.run_id}",
                                        daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        run = self.run
        step = run.step
        lease = float(self.engine.policy.step_lease_seconds)
        again = False
        while again or not self._stop.wait(self.interval):
            again = False
            try:
                data = json.loads(json.dumps(run.data, default=str))
            except RuntimeError:  # the step changed the data mid-copy: next beat
                continue
            until = _iso(_now() + timedelta(seconds=lease))
            data["lease_until"] = until
            snapshot = RunRecord(kind=run.kind, run_id=run.run_id, step=run.step,
                                 status=run.status, data=data, created_at=run.created_at,
                                 updated_at=run.updated_at, etag=run.etag)
            try:
                saved = self.engine.services.state.save_run(snapshot)
            except StaleRun:
                # A request joining the run (force/both) wrote its fields: adopt them and renew
                # at once. Only when another instance took the step over is the lease lost.
                try:
                    fresh = self.engine.still_ours(run, step)
                except Exception as exc:
                    log.warning("rotation %s: lease renewal failed (%s)", run.run_id,
                                type(exc).__name__)
                    continue
                if fresh is None:
                    log.warning("rotation %s: lease lost during step %s", run.run_id, step)
                    return
                adopt_request(run.data, fresh.data)
                run.etag = fresh.etag
                again = not self._stop.is_set()
                continue
            except Exception as exc:
                log.warning("rotation %s: lease renewal failed (%s)", run.run_id,
                            type(exc).__name__)
                continue
            run.etag = saved.etag
            run.data["lease_until"] = until
