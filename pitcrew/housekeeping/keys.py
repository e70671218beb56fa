"""Keys: rotate with Key Vault's own operation (rotate_key), once per version, and keep each
key's rotation policy (lifetime actions, expiryTime) in line with pitcrew.yaml.

A rotation is keyed by (vault, key, the version that neared expiry): a KeyNearExpiry event and
the sweep claim the same key (`StateStore.claim("key-rotation", ...)`), so of any number of
events, sweeps and instances exactly one calls rotate_key. The claim's holder re-reads the
latest version first: when it is no longer the one that neared expiry, Key Vault (its own
rotation policy) or an earlier attempt already rotated it, and nothing more happens. Consumers of
the version-less key id get the new version at once; consumers pinned to a version are told.
"""

from __future__ import annotations

import logging

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.bootstrap import Services
from pitcrew.events import KeyVaultObjectEvent
from pitcrew.housekeeping import messages
from pitcrew.housekeeping.policy import KeyRule
from pitcrew.housekeeping.ports import KeyRotationPolicy, KeyStore
from pitcrew.rotation.ports import VaultUnavailable

log = logging.getLogger(__name__)
CLAIM_SCOPE = "key-rotation"
LEASE_SECONDS = 120.0


def rotation_key(vault: str, name: str, version: str) -> str:
    return f"{vault.lower()}/{name.lower()}@{version.lower()}"


def desired_policy(rule: KeyRule) -> KeyRotationPolicy:
    return KeyRotationPolicy(expires_in_days=rule.expires_in_days,
                             rotate_before_expiry_days=rule.rotate_before_expiry_days,
                             notify_before_expiry_days=rule.notify_before_expiry_days)


def policy_differences(current: KeyRotationPolicy | None, wanted: KeyRotationPolicy) -> list[str]:
    """What differs between a key's rotation policy and pitcrew.yaml, in words."""
    if current is None:
        return ["has no rotation policy"]
    out = []
    for field, label in (("expires_in_days", "expiryTime"),
                         ("rotate_before_expiry_days", "Rotate timeBeforeExpiry"),
                         ("notify_before_expiry_days", "Notify timeBeforeExpiry")):
        have, want = getattr(current, field), getattr(wanted, field)
        if have != want:
            out.append(f"{label} is {_days(have)}, pitcrew.yaml wants {_days(want)}")
    if current.rotate_after_create_days is not None:
        out.append(f"Rotate timeAfterCreate is {_days(current.rotate_after_create_days)}, "
                   "pitcrew.yaml rotates before expiry instead")
    return out


def _days(days: int | None) -> str:
    return f"P{days}D" if days is not None else "unset"


def check_policy(services: Services, store: KeyStore, vault: str, name: str, rule: KeyRule, *,
                 apply: bool, actor: str, correlation_id: str) -> tuple[list[str], str]:
    """(differences, what was done). Applies pitcrew.yaml's policy when `apply` is set."""
    wanted = desired_policy(rule)
    differences = policy_differences(store.rotation_policy(vault, name), wanted)
    if not differences:
        return [], ""
    if not apply:
        return [f"rotation policy: {d}" for d in differences], (
            "rotation policy differs (`pitcrew expiry sweep --fix` applies pitcrew.yaml's)")
    store.set_rotation_policy(vault, name, wanted)
    services.audit.append(AuditRecord(
        actor=actor, action="key.rotation_policy", target=f"{vault}/keys/{name}",
        outcome="succeeded", correlation_id=correlation_id,
        details={"differences": differences, "applied": {
            "expiryTime": _days(wanted.expires_in_days),
            "rotateBeforeExpiry": _days(wanted.rotate_before_expiry_days),
            "notifyBeforeExpiry": _days(wanted.notify_before_expiry_days)}},
    ))
    return [], "rotation policy applied (" + "; ".join(differences) + ")"


def rotate_once(services: Services, store: KeyStore, vault: str, name: str,
                version: str | None, rule: KeyRule, *, actor: str, correlation_id: str,
                reason: str) -> str:
    """Rotate the key with Key Vault's rotate operation unless that version was rotated already.
    RetryLater while another instance holds the claim."""
    version = version or store.latest_version(vault, name)
    if not version:
        return f"key {vault}/{name} no longer exists"
    key = rotation_key(vault, name, version)
    claim = services.state.claim(CLAIM_SCOPE, key, lease_seconds=LEASE_SECONDS)
    if claim is None:
        return f"already rotated (version {version} was handled before)"
    try:
        latest = store.latest_version(vault, name)
        if latest is None or latest.lower() != version.lower():
            outcome = (f"not rotated: version {version} is no longer the latest "
                       f"({latest or 'key deleted'} is)")
            services.state.complete(claim, outcome=outcome)
            return outcome
        new = store.rotate(vault, name)
    except Exception as exc:
        services.state.release(claim, reason=type(exc).__name__)
        raise
    services.audit.append(AuditRecord(
        actor=actor, action="key.rotated", target=f"{vault}/keys/{name}", outcome="succeeded",
        correlation_id=correlation_id,
        details={"previousVersion": version, "version": new.version, "reason": reason,
                 "operation": "rotate_key"},
    ))
    outcome = f"rotated by Key Vault's rotate operation: {version} -> {new.version}"
    services.state.complete(claim, outcome=outcome)
    log.info("key %s/%s: %s", vault, name, outcome)
    if rule.pinned_consumers:
        messages.tell(services, messages.pinned_consumers(
            vault, name, version, str(new.version), rule.pinned_consumers),
            action="notify.key_pinned_consumers", target=f"{vault}/keys/{name}",
            correlation_id=correlation_id, details={"version": new.version})
        outcome += f"; told {len(rule.pinned_consumers)} pinned consumer(s)"
    return outcome


def handle_key_event(kv: KeyVaultObjectEvent, services: Services) -> str | None:
    """KeyNearExpiry / KeyExpired: rotate when a key rule says so; None means notify a person."""
    rule = services.policy.expiry.key_rule(kv.vault_name, kv.object_name)
    if rule is None or not rule.rotate:
        return None
    if services.policy.mode == "plan":
        services.audit.append(AuditRecord(
            actor=app_identity(), action="key.plan", target=kv.target, outcome="planned",
            correlation_id=kv.id, details={"version": kv.version, "plan": "rotate_key"}))
        return f"planned (mode: plan): rotate key {kv.object_name} with Key Vault's rotate"
    try:
        return rotate_once(services, services.housekeeping.keys, kv.vault_name,
                           kv.object_name, kv.version or None, rule, actor=app_identity(),
                           correlation_id=kv.id, reason=f"{kv.event.type} ({kv.id})")
    except VaultUnavailable as unavailable:
        # Not transient: a person grants the role; they hear of the expiry meanwhile.
        log.error("key %s: %s; %s", kv.target, unavailable, unavailable.action)
        return None
