"""Certificates: check each certificate's policy (issuer, the AutoRenew lifetime action) against
pitcrew.yaml; renew a self-signed or integrated-CA certificate whose auto-renew did not happen
(begin_create_certificate with its own policy, then follow the pending operation); for other
issuers tell the owner exactly what to do.

A renewal is keyed by (vault, certificate, the version that neared expiry), claimed like a key
rotation, so an event and the sweep start it once. The claim's holder re-reads the latest version
(auto-renew may have happened meanwhile) and any pending operation (an earlier attempt's) before
creating anything; a renewal still in progress when the wait ends is followed by the next sweep.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from pitcrew import state as state_module
from pitcrew.audit import AuditRecord, app_identity
from pitcrew.bootstrap import Services
from pitcrew.events import KeyVaultObjectEvent
from pitcrew.housekeeping import messages
from pitcrew.housekeeping.policy import CertificateRule, ExpiryPolicy
from pitcrew.housekeeping.ports import CertificatePolicyView, CertificateStore, ObjectProperties
from pitcrew.links import docs_url
from pitcrew.rotation.ports import VaultUnavailable

log = logging.getLogger(__name__)
CLAIM_SCOPE = "certificate-renewal"
MISSED_AFTER = timedelta(days=1)  # auto-renew runs within hours of its trigger; a day is missed


def issuer_kind(store: CertificateStore, policy: ExpiryPolicy, vault: str,
                view: CertificatePolicyView, cache: dict[str, str] | None = None) -> str:
    """`self`, `integrated` (a CA Key Vault renews through) or `external`."""
    if view.issuer.lower() == "self":
        return "self"
    if view.issuer.lower() == "unknown":
        return "external"
    key = f"{vault.lower()}/{view.issuer.lower()}"
    if cache is not None and key in cache:
        return cache[key]
    provider = store.issuer_provider(vault, view.issuer)
    integrated = {p.lower() for p in policy.integrated_issuers}
    kind = "integrated" if provider and provider.lower() in integrated else "external"
    if cache is not None:
        cache[key] = kind
    return kind


def policy_problems(view: CertificatePolicyView, rule: CertificateRule | None) -> list[str]:
    problems = []
    if not view.auto_renews:
        problems.append("policy has no AutoRenew lifetime action"
                        + (" (EmailContacts only)" if view.email_only else ""))
    if rule is not None and rule.renew_at_percent is not None and \
            view.auto_renew_percent != rule.renew_at_percent:
        problems.append(f"AutoRenew at {_trigger(view)}, pitcrew.yaml wants "
                        f"{rule.renew_at_percent}% of lifetime")
    if rule is not None and rule.renew_days_before_expiry is not None and \
            view.auto_renew_days_before_expiry != rule.renew_days_before_expiry:
        problems.append(f"AutoRenew at {_trigger(view)}, pitcrew.yaml wants "
                        f"{rule.renew_days_before_expiry} days before expiry")
    return problems


def _trigger(view: CertificatePolicyView) -> str:
    if view.auto_renew_percent is not None:
        return f"{view.auto_renew_percent}% of lifetime"
    if view.auto_renew_days_before_expiry is not None:
        return f"{view.auto_renew_days_before_expiry} days before expiry"
    return "never"


def auto_renew_due(view: CertificatePolicyView, props: ObjectProperties) -> datetime | None:
    """When Key Vault should have renewed the certificate by itself; None: it never will."""
    expires = props.expires_on
    if expires is None:
        return None
    if view.auto_renew_days_before_expiry is not None:
        return expires - timedelta(days=view.auto_renew_days_before_expiry)
    if view.auto_renew_percent is not None and props.created_on is not None:
        return props.created_on + (expires - props.created_on) * (view.auto_renew_percent / 100)
    return None


def owner_of(props: ObjectProperties, rule: CertificateRule | None, owner_tag: str | None) -> str:
    if rule is not None and rule.owner:
        return rule.owner
    return str(props.tags.get(owner_tag, "")) if owner_tag else ""


def external_action(vault: str, name: str, issuer: str) -> str:
    return (f"Request a new certificate from the issuing CA ({issuer}): `az keyvault certificate "
            f"pending create`-style — create a CSR with `az keyvault certificate create "
            f"--vault-name {vault} --name {name} --policy @policy.json` (issuer Unknown), have "
            f"the CA sign it, then `az keyvault certificate pending merge --vault-name {vault} "
            f"--name {name} --file signed.cer`; see {docs_url('runbooks/certificate-renewal.md')}.")


def renew_once(services: Services, store: CertificateStore, vault: str, name: str,
               version: str | None, *, actor: str, correlation_id: str, reason: str,
               wait_seconds: float, poll_seconds: float) -> str:
    """Start (or follow) the renewal of the version that neared expiry, once."""
    version = version or store.latest_version(vault, name)
    if not version:
        return f"certificate {vault}/{name} no longer exists"
    claim = services.state.claim(CLAIM_SCOPE, f"{vault.lower()}/{name.lower()}@{version.lower()}",
                                 lease_seconds=wait_seconds + 120)
    if claim is None:
        return f"already renewed (version {version} was handled before)"
    try:
        latest = store.latest_version(vault, name)
        if latest is None or latest.lower() != version.lower():
            outcome = f"not renewed: version {version} is no longer the latest ({latest} is)"
            services.state.complete(claim, outcome=outcome)
            return outcome
        status = store.pending(vault, name)
        started = False
        if status is None or status.status.lower() != "inprogress":
            status = store.begin_renewal(vault, name)
            started = True
            services.audit.append(AuditRecord(
                actor=actor, action="certificate.renewal_started",
                target=f"{vault}/certificates/{name}", outcome="succeeded",
                correlation_id=correlation_id,
                details={"version": version, "reason": reason,
                         "operation": "begin_create_certificate"}))
        deadline = time.monotonic() + wait_seconds
        while status.status.lower() == "inprogress" and time.monotonic() < deadline:
            time.sleep(poll_seconds)
            status = store.pending(vault, name) or status
    except Exception as exc:
        services.state.release(claim, reason=type(exc).__name__)
        raise
    state = status.status.lower()
    if state == "inprogress":
        # Followed by the next sweep (or event): the claim is free again, the operation stays.
        services.state.release(claim, reason="renewal in progress")
        return ("renewal started, still in progress" if started
                else "renewal in progress (followed)")
    if state == "completed":
        new = store.latest_version(vault, name)
        outcome = f"renewed: {version} -> {new}"
        services.audit.append(AuditRecord(
            actor=actor, action="certificate.renewed", target=f"{vault}/certificates/{name}",
            outcome="succeeded", correlation_id=correlation_id,
            details={"previousVersion": version, "version": new}))
        services.state.complete(claim, outcome=outcome)
        return outcome
    outcome = f"renewal failed ({state}: {status.error or 'no detail'})"
    services.audit.append(AuditRecord(
        actor=actor, action="certificate.renewed", target=f"{vault}/certificates/{name}",
        outcome="failed", correlation_id=correlation_id,
        details={"version": version, "status": state, "error": status.error}))
    services.state.complete(claim, outcome=outcome)
    return outcome


def handle_certificate_event(kv: KeyVaultObjectEvent, services: Services) -> str | None:
    """CertificateNearExpiry / CertificateExpired. Renews a self-signed or integrated-CA
    certificate whose auto-renew did not happen; tells the owner what to do for others. None:
    the caller sends the generic expiry notification."""
    try:
        return _certificate_event(kv, services)
    except VaultUnavailable as unavailable:
        # Not transient: a person grants the role; they hear of the expiry meanwhile.
        log.error("certificate %s: %s; %s", kv.target, unavailable, unavailable.action)
        return None


def _certificate_event(kv: KeyVaultObjectEvent, services: Services) -> str | None:
    policy = services.policy.expiry
    rule = policy.certificate_rule(kv.vault_name, kv.object_name)
    if rule is None and kv.vault_name.lower() not in {v.lower() for v in policy.vaults}:
        return None  # pitcrew does not look after this vault's certificates: a person does
    store = services.housekeeping.certificates
    view = store.policy(kv.vault_name, kv.object_name)
    kind = issuer_kind(store, policy, kv.vault_name, view)
    props = next((p for p in store.list_properties(kv.vault_name)
                  if p.name.lower() == kv.object_name.lower()), None)
    if props is None:
        return None
    expires = props.expires_on.isoformat() if props.expires_on else "unknown"
    owner = owner_of(props, rule, policy.hygiene.owner_tag)
    if kind == "external":
        outcome = messages.tell(services, messages.certificate_action(
            kv.vault_name, kv.object_name, kv.version or None, issuer=view.issuer,
            expires=expires, action=external_action(kv.vault_name, kv.object_name, view.issuer),
            owner=owner, severity="warning", correlation_id=kv.id),
            action="notify.certificate", target=kv.target, correlation_id=kv.id,
            details={"issuer": view.issuer, "owner": owner})
        return f"issuer {view.issuer} is outside Key Vault: told {owner or 'the owner'} ({outcome})"
    due = auto_renew_due(view, props)
    now = state_module.utcnow()
    if due is not None and now < due + MISSED_AFTER and (props.expires_on or now) > now:
        return f"auto-renew ({_trigger(view)}) is due {due:%Y-%m-%d %H:%M} UTC: nothing to do"
    if rule is not None and not rule.renew:
        return None
    if services.policy.mode == "plan":
        return f"planned (mode: plan): renew {kv.object_name} with its own policy"
    outcome = renew_once(services, store, kv.vault_name, kv.object_name, kv.version or None,
                         actor=app_identity(), correlation_id=kv.id,
                         reason=f"{kv.event.type} ({kv.id})",
                         wait_seconds=policy.renewal_wait_seconds,
                         poll_seconds=policy.renewal_poll_seconds)
    if outcome.startswith("renewal failed"):
        messages.tell(services, messages.certificate_action(
            kv.vault_name, kv.object_name, kv.version or None, issuer=view.issuer,
            expires=expires, action=f"pitcrew's renewal {outcome[8:]}; renew it by hand.",
            owner=owner, severity="critical", correlation_id=kv.id),
            action="notify.certificate", target=kv.target, correlation_id=kv.id,
            details={"issuer": view.issuer, "owner": owner})
    return outcome
