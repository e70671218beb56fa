"""Rotation's entry points: a Key Vault event, `POST/GET /api/rotations`, the `advance_rotations`
timer. All go through the same engine; `mode: plan` (or `dry_run`) only plans.

An event about a secret no rule owns is always handed back for the expiry notification, whatever
happens to rotation (a hook module that fails to import, a vault pitcrew cannot read). A vault
pitcrew cannot use is told to a person, naming the vault and the missing role; for `pitcrew
rotate` it is a 404 (unknown vault) or a 403 naming the role, never a 5xx."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.auth import Role, require
from pitcrew.bootstrap import Services, get_services
from pitcrew.errors import InvalidInput, RetryLater
from pitcrew.events import KeyVaultObjectEvent
from pitcrew.http.errors import HttpResult, http_errors
from pitcrew.http.models import RotationRequest, RotationsQuery
from pitcrew.http.paging import decode_token, encode_token
from pitcrew.rotation import messages, tags
from pitcrew.rotation.engine import (
    RUN_KIND,
    RotationEngine,
    RotationStopped,
    RunBusy,
    describe_error,
    run_id_for,
    run_summary,
)
from pitcrew.rotation.policy import DUAL_KEY_STRATEGIES
from pitcrew.rotation.ports import VaultUnavailable

log = logging.getLogger(__name__)
MAX_SCAN_ROWS = 5000  # rows one GET /api/rotations?secret=NAME reads before answering a page


def rotate_on_event(kv: KeyVaultObjectEvent, services: Services) -> str | None:
    """Rotate the secret a NearExpiry/Expired event names, when a strategy owns it. None means
    nobody does: the caller notifies a person instead."""
    if kv.object_type != "Secret":
        return None
    if tags.is_pending(services.policy.rotation, kv.object_name):
        # Written with the new value's expiry, so Key Vault announces it as it does the
        # secret: pitcrew's own copy, replaced by the secret's next rotation. Nobody acts.
        return (f"{kv.object_name} is the pending copy of a generated rotation (pitcrew's own; "
                "the secret's next rotation replaces it): nothing to do")
    try:
        target = tags.owner(services.policy.rotation, services.rotation.secrets, kv.vault_name,
                            kv.object_name)
    except VaultUnavailable as unavailable:
        # Tags could not be read: tell a person about the vault, and (returning None) about the
        # expiry itself.
        tell_vault_unavailable(unavailable, kv.object_name, services, correlation_id=kv.id,
                               event_type=kv.event.type)
        return None
    except (RotationStopped, InvalidInput) as bad_tags:  # e.g. a malformed ProviderAddress tag
        log.warning("%s/%s: %s; notifying a person instead", kv.vault_name, kv.object_name,
                    bad_tags)
        return None
    if target is None or target.strategy == "notify":
        return None
    engine = RotationEngine(services)
    try:
        if services.policy.mode == "plan":
            return _plan_only(engine, kv.vault_name, kv.object_name, kv.version or None,
                              actor=app_identity(), correlation_id=kv.id, services=services)
        run = engine.start(kv.vault_name, kv.object_name, kv.version or None,
                           actor=app_identity(), correlation_id=kv.id,
                           reason=f"{kv.event.type} ({kv.id})", target=target)
    except VaultUnavailable as unavailable:
        outcome = tell_vault_unavailable(unavailable, kv.object_name, services,
                                         correlation_id=kv.id, event_type=kv.event.type)
        return f"not rotated: {unavailable} ({outcome})"
    return f"rotation {run.status} at {run.step}: {run.data.get('outcome') or 'in progress'}"


def tell_vault_unavailable(unavailable: VaultUnavailable, secret: str, services: Services, *,
                           correlation_id: str, event_type: str | None = None,
                           actor: str | None = None) -> str:
    """Notify (and audit) that pitcrew cannot use a vault; returns the dispatch outcome."""
    notification = messages.vault_unavailable(
        unavailable.vault, secret, str(unavailable), unavailable.action, kind=unavailable.kind,
        correlation_id=correlation_id, event_type=event_type)
    dispatch = services.router.send(notification)
    services.audit.append(AuditRecord(
        actor=actor or app_identity(), action="rotation.vault_unavailable",
        target=f"{unavailable.vault}/secrets/{secret}", outcome="failed",
        correlation_id=correlation_id,
        details={"problem": str(unavailable), "kind": unavailable.kind,
                 "missingRole": unavailable.role if unavailable.kind == "forbidden" else None,
                 "notification": notification.id, **dispatch.to_dict()},
    ))
    log.error("pitcrew.rotation.vault_unavailable vault=%s secret=%s: %s", unavailable.vault,
              secret, unavailable)
    return str(dispatch.outcome)


def _vault_answer(unavailable: VaultUnavailable, run: dict[str, Any] | None = None) -> HttpResult:
    """A vault pitcrew cannot use, answered to an operator: 404 unknown, 403 missing role."""
    body: dict[str, Any] = {"vault": unavailable.vault, "message": str(unavailable),
                            "action": unavailable.action}
    if run is not None:
        body["run"] = run
    if unavailable.kind == "unknown":
        return HttpResult(404, {"error": "vault_not_found", **body})
    return HttpResult(403, {"error": "vault_access_denied", "missingRole": unavailable.role,
                            **body})


def _plan_only(engine: RotationEngine, vault: str, secret: str, version: str | None, *,
               actor: str, correlation_id: str, services: Services) -> str:
    plan = engine.plan(vault, secret, version)
    run_id = run_id_for(vault, secret, plan["version"])
    services.router.send(messages.planned(run_id, plan))
    services.audit.append(AuditRecord(
        actor=actor, action="rotation.plan", target=f"{vault}/secrets/{secret}",
        outcome="planned", correlation_id=correlation_id, details={"plan": plan},
    ))
    return "planned (mode: plan): " + "; ".join(plan["steps"])


@http_errors
def request_rotation(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/rotations {"vault", "secret", "dry_run"?, "force"?, "reason"?, "both"?}
    (role Rotator): rotate now. `force` skips the grace period and needs a `reason` (audited);
    `both` (dual-key strategies) also regenerates the key in use, a grace period later."""
    principal = require(headers, Role.ROTATOR)
    request = RotationRequest.from_body(body)
    services = get_services()
    engine = RotationEngine(services)
    try:
        return _request_rotation(engine, services, principal.actor, request.vault,
                                 request.secret, dry_run=request.dry_run, force=request.force,
                                 both=request.both, reason=request.reason)
    except VaultUnavailable as unavailable:
        tell_vault_unavailable(unavailable, request.secret, services, actor=principal.actor,
                               correlation_id=f"manual:{principal.actor}")
        return _vault_answer(unavailable)


def _request_rotation(engine: RotationEngine, services: Services, actor: str, vault: str,
                      secret: str, *, dry_run: bool, force: bool, both: bool,
                      reason: str) -> HttpResult:
    if not services.policy.looks_after_vault(vault, secret):
        raise InvalidInput("vault", f"{vault!r} is not a vault this policy looks after for "
                           f"{secret!r}: add a rule to rotation.secrets or the vault to "
                           "expiry.vaults in pitcrew.yaml")
    if dry_run or services.policy.mode == "plan":
        plan = engine.plan(vault, secret, force=force, both=both)
        services.audit.append(AuditRecord(
            actor=actor, action="rotation.plan", target=f"{vault}/secrets/{secret}",
            outcome="planned", correlation_id=f"manual:{vault}/{secret}",
            details={"plan": plan, "dryRun": dry_run, "force": force, "both": both,
                     "reason": reason or None},
        ))
        return HttpResult(200, {"dryRun": True, "plan": plan})
    target = tags.owner(services.policy.rotation, services.rotation.secrets, vault, secret)
    if target is None or target.strategy == "notify":
        raise InvalidInput("secret", f"no rotation strategy owns {vault}/{secret}: add a rule "
                           "to rotation.secrets in pitcrew.yaml")
    if both and target.strategy not in DUAL_KEY_STRATEGIES:
        raise InvalidInput("both", f"only dual-key strategies have two keys; {vault}/{secret} "
                           f"uses {target.strategy}")
    try:
        run = engine.start(vault, secret, None, actor=actor,
                           correlation_id=f"manual:{actor}", reason=reason or "manual",
                           target=target, retry_failed=True, force=force, both=both)
    except RunBusy as busy:
        # Another request (or the timer) holds the run's step and advances it; this request
        # joined it (a force/both is recorded on it). Not an error: the run, as the waiting
        # answer gives it, and who goes on with it.
        now = services.state.get_run(RUN_KIND, busy.run.run_id) or busy.run
        return HttpResult(202, {"dryRun": False, "inProgress": True, "message": str(busy),
                                "run": run_summary(now)})
    except (InvalidInput, RetryLater, VaultUnavailable):
        raise
    except Exception as exc:
        # The failure is recorded in the run; the advance_rotations timer retries it and, past
        # max_attempts, it ends with an alert. Say so rather than a bare 500.
        log.warning("manual rotation of %s/%s: %s", vault, secret, describe_error(exc))
        runs = [r for r in services.state.list_runs(RUN_KIND, status="running")
                if r.data.get("vault") == vault and r.data.get("secret") == secret]
        return HttpResult(502, {"error": "step_failed", "message": "a rotation step failed; "
                                "the advance_rotations timer retries it",
                                "run": run_summary(runs[0]) if runs else None})
    problem = run.data.get("vault_unavailable")
    if run.status == "failed" and isinstance(problem, dict):
        return _vault_answer(VaultUnavailable(vault, str(problem.get("kind")),
                                              str(problem.get("role")),
                                              str(problem.get("detail") or "")),
                             run_summary(run))
    status = 202 if run.status == "waiting" else 200
    return HttpResult(status, {"dryRun": False, "run": run_summary(run)})


@http_errors
def list_rotations(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/rotations?status=&secret=&limit=&continuation= (role Reader): runs with their
    step and outcome, ordered by vault/secret then version, one page at a time."""
    require(headers, Role.READER)
    wanted = RotationsQuery.of(query)
    run_ids, name_only = None, None
    if wanted.secret and "/" in wanted.secret:
        # Run ids are "vault/secret@version": one key range holds every run of the secret.
        run_ids = (f"{wanted.secret}@", f"{wanted.secret}A")
    elif wanted.secret:
        name_only = wanted.secret  # any vault: filtered as read, at most MAX_SCAN_ROWS a page
    state = get_services().state
    token, limit = wanted.continuation, wanted.limit
    items: list[dict[str, Any]] = []
    scanned = 0
    while True:
        page = state.runs_page(RUN_KIND, limit=limit - len(items), status=wanted.status,
                               run_ids=run_ids, continuation=token)
        scanned += len(page.items)
        for run in page.items:
            summary = run_summary(run)
            if name_only is None or str(summary["secret"]).lower() == name_only:
                items.append(summary)
        token = decode_token(page.continuation)
        if len(items) >= limit or token is None or scanned >= MAX_SCAN_ROWS:
            break
    return HttpResult(200, {"rotations": items,
                            "continuation": encode_token(token) if token else None})


def advance_rotations() -> dict[str, int]:
    """The advance_rotations timer: resume runs that wait out a grace period or stalled."""
    services = get_services()
    counts = RotationEngine(services).resume_due()
    if any(counts.values()):
        log.info("advance_rotations: %s", json.dumps(counts))
    return counts
