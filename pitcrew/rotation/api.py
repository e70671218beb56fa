"""Rotation's entry points: a Key Vault event, `POST/GET /api/rotations`, the `advance_rotations`
timer. All go through the same engine; `mode: plan` (or `dry_run`) only plans."""

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
    from pitcrew.services import Services

log = logging.getLogger(__name__)


def engine_for(services: Services) -> RotationEngine:
    from pitcrew.rotation.engine import RotationEngine

    return RotationEngine(services)


def rotate_on_event(kv: KeyVaultObjectEvent, services: Services) -> str | None:
    """Rotate the secret a NearExpiry/Expired event names, when a strategy owns it. None means
    nobody does: the caller notifies a person instead."""
    if kv.object_type != "Secret":
        return None
    engine = engine_for(services)
    target = engine.target_for(kv.vault_name, kv.object_name)
    if target is None or target.strategy == "notify":
        return None
    if services.policy.mode == "plan":
        return _plan_only(engine, kv.vault_name, kv.object_name, kv.version or None,
                          actor=app_identity(), correlation_id=kv.id, services=services)
    run = engine.start(kv.vault_name, kv.object_name, kv.version or None, actor=app_identity(),
                       correlation_id=kv.id, reason=f"{kv.event.type} ({kv.id})", target=target)
    return f"rotation {run.status} at {run.step}: {run.data.get('outcome') or 'in progress'}"


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
    """POST /api/rotations {"vault", "secret", "dry_run"?} (role Rotator): rotate now."""
    from pitcrew.auth import Role, require
    from pitcrew.rotation.engine import run_summary
    from pitcrew.services import get_services

    principal = require(headers, Role.ROTATOR)
    raw = _body(body)
    vault, secret = _name(raw, "vault"), _name(raw, "secret")
    dry_run = raw.get("dry_run", raw.get("dryRun", False))
    if not isinstance(dry_run, bool):
        raise InvalidInput("dry_run", "must be true or false")
    services = get_services()
    engine = engine_for(services)
    if dry_run or services.policy.mode == "plan":
        plan = engine.plan(vault, secret)
        services.audit.append(AuditRecord(
            actor=principal.actor, action="rotation.plan", target=f"{vault}/secrets/{secret}",
            outcome="planned", correlation_id=f"manual:{vault}/{secret}",
            details={"plan": plan, "dryRun": dry_run},
        ))
        return HttpResult(200, {"dryRun": True, "plan": plan})
    target = engine.target_for(vault, secret)
    if target is None or target.strategy == "notify":
        raise InvalidInput("secret", f"no rotation strategy owns {vault}/{secret}: add a rule "
                           "to rotation.secrets in pitcrew.yaml")
    try:
        run = engine.start(vault, secret, None, actor=principal.actor,
                           correlation_id=f"manual:{principal.actor}", reason="manual",
                           target=target, retry_failed=True)
    except (InvalidInput, RetryLater):
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
    status = 202 if run.status == "waiting" else 200
    return HttpResult(status, {"dryRun": False, "run": run_summary(run)})


@http_errors
def list_rotations(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/rotations?status=&secret= (role Reader): runs with their step and outcome."""
    from pitcrew.auth import Role, require
    from pitcrew.rotation.engine import RUN_KIND, run_summary
    from pitcrew.services import get_services

    require(headers, Role.READER)
    status = query.get("status") or None
    if status and status not in ("running", "waiting", "succeeded", "failed", "skipped"):
        raise InvalidInput("status", "must be running, waiting, succeeded, failed or skipped")
    secret = (query.get("secret") or "").lower() or None
    runs = [run_summary(r) for r in get_services().state.list_runs(RUN_KIND, status=status)]
    if secret:
        runs = [r for r in runs if f"{r['vault']}/{r['secret']}".lower() == secret
                or str(r["secret"]).lower() == secret]
    runs.sort(key=lambda r: r["updatedAt"], reverse=True)
    return HttpResult(200, {"rotations": runs})


def advance_rotations() -> dict[str, int]:
    """The advance_rotations timer: resume runs that wait out a grace period or stalled."""
    from pitcrew.services import get_services

    services = get_services()
    counts = engine_for(services).resume_due()
    if any(counts.values()):
        log.info("advance_rotations: %s", json.dumps(counts))
    return counts
