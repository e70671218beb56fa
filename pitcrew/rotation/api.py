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
from typing import TYPE_CHECKING, Any

from pitcrew.api import HttpResult, http_errors
from pitcrew.audit import AuditRecord, app_identity
from pitcrew.errors import InvalidInput, RetryLater

if TYPE_CHECKING:
    from pitcrew.events import KeyVaultObjectEvent
    from pitcrew.rotation.engine import RotationEngine
    from pitcrew.rotation.ports import VaultUnavailable
    from pitcrew.services import Services

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 500
MAX_SCAN_ROWS = 5000  # rows one GET /api/rotations?secret=NAME reads before answering a page
STATUSES = ("running", "waiting", "succeeded", "failed", "skipped")


def engine_for(services: Services) -> RotationEngine:
    from pitcrew.rotation.engine import RotationEngine

    return RotationEngine(services)


def rotate_on_event(kv: KeyVaultObjectEvent, services: Services) -> str | None:
    """Rotate the secret a NearExpiry/Expired event names, when a strategy owns it. None means
    nobody does: the caller notifies a person instead."""
    from pitcrew.rotation.engine import RotationStopped
    from pitcrew.rotation.ports import VaultUnavailable

    if kv.object_type != "Secret":
        return None
    engine = engine_for(services)  # never raises for a broken hook module
    try:
        target = engine.target_for(kv.vault_name, kv.object_name)
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
    from pitcrew.rotation import messages

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
    from pitcrew.rotation import messages
    from pitcrew.rotation.engine import run_id_for

    plan = engine.plan(vault, secret, version)
    run_id = run_id_for(vault, secret, plan["version"])
    services.router.send(messages.planned(run_id, plan))
    services.audit.append(AuditRecord(
        actor=actor, action="rotation.plan", target=f"{vault}/secrets/{secret}",
        outcome="planned", correlation_id=correlation_id, details={"plan": plan},
    ))
    return "planned (mode: plan): " + "; ".join(plan["steps"])


def _body(body: bytes) -> dict[str, Any]:
    from pitcrew.events import load_json

    raw = load_json(body)
    if not isinstance(raw, dict):
        raise InvalidInput("body", "must be a JSON object {\"vault\": ..., \"secret\": ...}")
    return raw


def _flag(raw: Mapping[str, Any], key: str, alias: str | None = None) -> bool:
    value = raw.get(key, raw.get(alias, False) if alias else False)
    if not isinstance(value, bool):
        raise InvalidInput(key, "must be true or false")
    return value


def _name(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(key, "is required (a string)")
    value = value.strip()
    if not all(c.isalnum() or c == "-" for c in value) or len(value) > 127:
        raise InvalidInput(key, f"is not a Key Vault name: {value[:64]!r}")
    return value


@http_errors
def request_rotation(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/rotations {"vault", "secret", "dry_run"?, "force"?, "reason"?, "both"?}
    (role Rotator): rotate now. `force` skips the grace period and needs a `reason` (audited);
    `both` (dual-key strategies) also regenerates the key in use, a grace period later."""
    from pitcrew.auth import Role, require
    from pitcrew.rotation.ports import VaultUnavailable
    from pitcrew.services import get_services

    principal = require(headers, Role.ROTATOR)
    raw = _body(body)
    vault, secret = _name(raw, "vault"), _name(raw, "secret")
    dry_run = _flag(raw, "dry_run", "dryRun")
    force, both = _flag(raw, "force"), _flag(raw, "both")
    reason = raw.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("reason", "must be a string")
    reason = " ".join((reason or "").split())
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput("reason", f"must be at most {MAX_REASON_CHARS} characters")
    if (force or both) and not reason:
        raise InvalidInput("reason", "is required with force or both: say why (it is audited)")
    services = get_services()
    engine = engine_for(services)
    try:
        return _request_rotation(engine, services, principal.actor, vault, secret,
                                 dry_run=dry_run, force=force, both=both, reason=reason)
    except VaultUnavailable as unavailable:
        tell_vault_unavailable(unavailable, secret, services, actor=principal.actor,
                               correlation_id=f"manual:{principal.actor}")
        return _vault_answer(unavailable)


def _request_rotation(engine: RotationEngine, services: Services, actor: str, vault: str,
                      secret: str, *, dry_run: bool, force: bool, both: bool,
                      reason: str) -> HttpResult:
    from pitcrew.rotation.engine import run_summary
    from pitcrew.rotation.policy import DUAL_KEY_STRATEGIES
    from pitcrew.rotation.ports import VaultUnavailable

    if dry_run or services.policy.mode == "plan":
        plan = engine.plan(vault, secret, force=force, both=both)
        services.audit.append(AuditRecord(
            actor=actor, action="rotation.plan", target=f"{vault}/secrets/{secret}",
            outcome="planned", correlation_id=f"manual:{vault}/{secret}",
            details={"plan": plan, "dryRun": dry_run, "force": force, "both": both,
                     "reason": reason or None},
        ))
        return HttpResult(200, {"dryRun": True, "plan": plan})
    target = engine.target_for(vault, secret)
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
    except (InvalidInput, RetryLater, VaultUnavailable):
        raise
    except Exception as exc:
        # The failure is recorded in the run; the advance_rotations timer retries it and, past
        # max_attempts, it ends with an alert. Say so rather than a bare 500.
        from pitcrew.rotation.engine import RUN_KIND, describe_error

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
    from pitcrew.auth import Role, require
    from pitcrew.paging import decode_token, encode_token, limit_param, query_page, token_param
    from pitcrew.rotation.engine import RUN_KIND, run_summary
    from pitcrew.services import get_services
    from pitcrew.state import _run_from_entity, table_key

    require(headers, Role.READER)
    limit = limit_param(query)
    token = token_param(query)
    status = (query.get("status") or "").strip() or None
    if status and status not in STATUSES:
        raise InvalidInput("status", "must be running, waiting, succeeded, failed or skipped")
    secret = (query.get("secret") or "").strip().lower() or None
    if secret and (len(secret) > 260 or not all(c.isalnum() or c in "-/" for c in secret)
                   or secret.count("/") > 1):
        raise InvalidInput("secret", "must be VAULT/SECRET or SECRET (Key Vault names)")
    flt = "PartitionKey eq @pk"
    params: dict[str, Any] = {"pk": table_key(RUN_KIND)}
    if status:
        flt += " and Status eq @status"
        params["status"] = status
    name_only = None
    if secret and "/" in secret:
        # Run ids are "vault/secret@version": one key range holds every run of the secret.
        flt += " and RunId ge @lo and RunId lt @hi"
        params.update(lo=f"{secret}@", hi=f"{secret}A")
    elif secret:
        name_only = secret  # any vault: filtered as read, at most MAX_SCAN_ROWS rows a page
    services = get_services()
    table = (services.runtime or _runtime()).table("runs")
    items: list[dict[str, Any]] = []
    scanned = 0
    while True:
        page = query_page(table, flt, limit=limit - len(items), continuation=token,
                          parameters=params)
        scanned += len(page.items)
        for row in page.items:
            summary = run_summary(_run_from_entity(_Row(row)))
            if name_only is None or str(summary["secret"]).lower() == name_only:
                items.append(summary)
        token = decode_token(page.continuation)
        if len(items) >= limit or token is None or scanned >= MAX_SCAN_ROWS:
            break
    return HttpResult(200, {"rotations": items,
                            "continuation": encode_token(token) if token else None})


def _runtime() -> Any:
    from pitcrew.runtime import get_runtime

    return get_runtime()


class _Row(dict[str, Any]):
    """A paged entity (a plain dict) with the `.metadata` a TableEntity has."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        super().__init__(row)
        self.metadata = getattr(row, "metadata", None) or {"etag": row.get("etag", "")}


def advance_rotations() -> dict[str, int]:
    """The advance_rotations timer: resume runs that wait out a grace period or stalled."""
    from pitcrew.services import get_services

    services = get_services()
    counts = engine_for(services).resume_due()
    if any(counts.values()):
        log.info("advance_rotations: %s", json.dumps(counts))
    return counts
