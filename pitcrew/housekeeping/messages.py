"""The notifications housekeeping sends, and the one place it sends them (`tell`): through the
Notifier the composition root built (`services.router.send`), audited. Names, versions, dates
and actions only: never a value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.bootstrap import Services
from pitcrew.housekeeping.ports import Finding
from pitcrew.links import docs_url
from pitcrew.notify.model import Action, Notification, Severity

MAX_LISTED = 25  # objects a vault summary names; the rest are counted (GET /api/expiry lists all)
NEEDS_A_PERSON = ("expired", "expiring", "no-expiry")


def tell(services: Services, notification: Notification, *, action: str, target: str,
         correlation_id: str, details: Mapping[str, Any], actor: str | None = None) -> str:
    """Send one notification and audit what became of it; returns the dispatch outcome.

    When `details` carry `errors` (a vault the sweep could not list), the work being told
    about failed: the record is `failed` however well the telling went, and the delivery's
    outcome is kept in the details (`delivery`)."""
    dispatch = services.router.send(notification)
    outcome: str = "failed" if details.get("errors") else dispatch.outcome
    services.audit.append(AuditRecord(
        actor=actor or app_identity(), action=action, target=target,
        outcome=outcome,  # type: ignore[arg-type]  # a dispatch outcome, as notify audits are
        correlation_id=correlation_id,
        details={**details, "notification": notification.id, "delivery": dispatch.outcome,
                 **dispatch.to_dict()},
    ))
    return str(dispatch.outcome)


def _line(finding: Finding) -> str:
    when = f", expires {finding.expires:%Y-%m-%d %H:%M} UTC" if finding.expires else ""
    what = f"{finding.kind} {finding.name} ({finding.cls}{when})"
    extra = "; ".join(p for p in (finding.action, *finding.problems) if p)
    return f"- {what}: {extra}" if extra else f"- {what}"


def attention(finding: Finding) -> bool:
    """Whether the vault summary names this object: a person acts, or pitcrew did."""
    return finding.cls in NEEDS_A_PERSON or bool(finding.problems) or bool(finding.action)


def vault_summary(vault: str, sweep_id: str, findings: Sequence[Finding], errors: Sequence[str],
                  *, plan: bool, list_command: str) -> Notification | None:
    """One notification per vault and sweep: counts per class, then what needs attention."""
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.cls] = counts.get(finding.cls, 0) + 1
    listed = [f for f in findings if attention(f)]
    if not listed and not errors:
        return None
    severity: Severity = "info"
    if errors or counts.get("expired") or any("failed" in f.action for f in listed):
        severity = "critical"
    elif any(f.cls in NEEDS_A_PERSON and not f.owner for f in listed) or any(
            f.problems for f in listed):
        severity = "warning"
    lines = [_line(f) for f in listed[:MAX_LISTED]]
    if len(listed) > MAX_LISTED:
        lines.append(f"- … and {len(listed) - MAX_LISTED} more ({list_command})")
    summary = (
        f"The expiry sweep of vault {vault}{' (plan: nothing was changed)' if plan else ''} "
        f"found {len(findings)} objects: "
        + ", ".join(f"{n} {cls}" for cls, n in sorted(counts.items())) + ".\n"
        + "\n".join([*(f"- cannot sweep: {e}" for e in errors), *lines])
    )
    return Notification(
        id=f"expiry-sweep:{sweep_id}:{vault.lower()}",
        dedup_key=f"expiry-sweep:{vault.lower()}",
        kind="expiry", severity=severity, status="info" if severity == "info" else "firing",
        title=f"Expiry sweep of {vault}: " + ", ".join(
            f"{counts[c]} {c}" for c in ("expired", "expiring", "no-expiry") if counts.get(c))
        if any(counts.get(c) for c in NEEDS_A_PERSON) else f"Expiry sweep of {vault}",
        summary=summary[:8000], correlation_id=sweep_id,
        facts={"Vault": vault, "Sweep": sweep_id,
               **{cls.capitalize(): str(n) for cls, n in sorted(counts.items())}},
        actions=(Action(label="List every finding", command=list_command),
                 Action(label="Follow the runbook (expiry)",
                        url=docs_url("runbooks/expiry-sweep.md"))),
    )


def pinned_consumers(vault: str, key: str, old: str, new: str,
                     consumers: Sequence[str]) -> Notification:
    """A key rotated by Key Vault's own operation: consumers pinned to the old version move."""
    return Notification(
        id=f"key-rotated:{vault.lower()}/{key.lower()}@{old}",
        dedup_key=f"key-rotated:{vault.lower()}/{key.lower()}",
        kind="rotation", severity="warning", status="firing",
        title=f"Key {key} in vault {vault} rotated: pinned consumers must move",
        summary=(f"pitcrew rotated key {key} in vault {vault} with Key Vault's rotate operation: "
                 f"version {old} -> {new}. Consumers using the version-less key id need nothing. "
                 f"These consumers pin version {old} and must move to {new} (or to the "
                 f"version-less id) before {old} expires: {', '.join(consumers)}."),
        correlation_id=f"{vault}/{key}@{old}",
        facts={"Vault": vault, "Key": key, "Old version": old, "New version": new,
               "Pinned consumers": ", ".join(consumers)},
        actions=(Action(label="Point each pinned consumer at the new version",
                        command=f"az keyvault key show --vault-name {vault} --name {key} "
                                "--query key.kid"),),
    )


def certificate_action(vault: str, name: str, version: str | None, *, issuer: str,
                       expires: str, action: str, owner: str, severity: Severity,
                       correlation_id: str) -> Notification:
    """A certificate pitcrew cannot renew itself (or whose renewal failed): who does what."""
    return Notification(
        id=f"certificate:{vault.lower()}/{name.lower()}@{version or 'latest'}:{correlation_id}",
        dedup_key=f"certificate:{vault.lower()}/{name.lower()}",
        kind="expiry", severity=severity, status="firing",
        title=f"Certificate {name} in vault {vault} needs {owner or 'its owner'}",
        summary=(f"Certificate {name} (version {version or 'unknown'}, issuer {issuer}) in vault "
                 f"{vault} expires {expires}. {action} "
                 f"Owner: {owner or 'unknown (no owner tag)'}."),
        correlation_id=correlation_id,
        facts={"Vault": vault, "Certificate": name, "Version": version or "unknown",
               "Issuer": issuer, "Expires": expires, "Owner": owner or "unknown"},
        actions=(Action(label="Follow the runbook (certificates)",
                        url=docs_url("runbooks/certificate-renewal.md")),
                 Action(label="Check the certificate's versions",
                        command=f"az keyvault certificate list-versions --vault-name {vault} "
                                f"--name {name}")),
    )
