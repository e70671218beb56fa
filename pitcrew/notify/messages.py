"""The words of each notification: what happened, when, where, and what to do about it."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from pitcrew.alerting.labels import alert_labels
from pitcrew.alerting.substance import alert_substance
from pitcrew.events import AlertEvent, KeyVaultObjectEvent
from pitcrew.links import safe_link
from pitcrew.notify.model import Action, Notification, Severity
from pitcrew.policy import Policy

_URGENT_DAYS = 7
_ALERT_SEVERITY: dict[str, Severity] = {
    "Sev0": "critical",
    "Sev1": "critical",
    "Sev2": "warning",
    "Sev3": "info",
    "Sev4": "info",
}


def _when(moment: datetime, now: datetime) -> str:
    days = (moment - now).total_seconds() / 86400
    stamp = moment.strftime("%Y-%m-%d %H:%M UTC")
    if days >= 1:
        return f"on {stamp} (in {int(days)} day{'s' if int(days) != 1 else ''})"
    if days >= 0:
        return f"on {stamp} (in {int(days * 24)} hours)"
    ago = int(-days)
    return f"on {stamp} ({ago} day{'s' if ago != 1 else ''} ago)"


def expiry_notification(
    event: KeyVaultObjectEvent, policy: Policy, *, now: datetime | None = None
) -> Notification:
    """Key Vault says an object nobody rotates expires (or has): tell a person what to do."""
    now = now or datetime.now(UTC)
    kind = event.object_type.lower()
    expired = event.condition == "Expired" or (event.expires is not None and event.expires <= now)
    if event.expires is None:
        when = "soon (Key Vault gave no expiry time)"
    else:
        when = _when(event.expires, now)
    urgent = expired or (
        event.expires is not None and (event.expires - now).total_seconds() < _URGENT_DAYS * 86400
    )
    verb = "expired" if expired else "expires"
    title = f"{event.object_type} {event.object_name} in vault {event.vault_name} {verb}"
    summary = (
        f"Key Vault {event.vault_name} reports that {kind} {event.object_name} "
        f"(version {event.version or 'unknown'}) {verb} {when}. No pitcrew rotation policy "
        f"covers it, so a person must act: issue a new credential and store it as a new "
        f"version with a new expiry before the current one lapses, or add a rotation rule "
        f"for it to pitcrew.yaml so pitcrew rotates it next time."
    )
    facts = {
        "Vault": event.vault_name,
        "Object": f"{kind}/{event.object_name}",
        "Version": event.version or "unknown",
        "Expires": event.expires.isoformat() if event.expires else "unknown",
        "Event": f"{event.event.type} ({event.id})",
    }
    if event.not_before:
        facts["Not before"] = event.not_before.isoformat()
    actions: list[Action] = []
    settings = policy.notifications.expiry
    runbook = safe_link(str(settings.runbook_url)) if settings.runbook_url else None
    if runbook:
        actions.append(Action(label="Follow the runbook", url=runbook))
    portal = _portal_link(event.event.source, f"{kind}s") if settings.portal_links else None
    if portal:
        actions.append(Action(label=f"Open the vault's {kind}s in the portal", url=portal))
    actions.append(
        Action(label="Check the new version's expiry after renewing", command=_check_command(event))
    )
    return Notification(
        # The event's identity is its source and id (claim_key); the id alone would let
        # another publisher's event with the same id take this notification's place.
        id=f"expiry:{event.id}|{event.event.claim_key[:16]}",
        dedup_key=f"expiry:{event.vault_name}/{kind}s/{event.object_name}",
        kind="expiry",
        severity="critical" if urgent else "warning",
        status="firing",
        title=title,
        summary=summary,
        correlation_id=event.id,
        facts=facts,
        actions=tuple(actions),
        labels={"kind": "expiry", "alertRule": f"keyvault-{kind}-expiry", "vault": event.vault_name,
                "object": f"{kind}/{event.object_name}", "objectType": kind},
    )


def _portal_link(resource_id: str, blade: str) -> str | None:
    """The portal page of an ARM resource id the event names; None unless it is one (the id
    comes from outside, so it is quoted and the result must still be a safe https link)."""
    if not resource_id.startswith("/subscriptions/"):
        return None
    return safe_link(f"https://portal.azure.com/#@/resource{quote(resource_id)}/{blade}")


def _check_command(event: KeyVaultObjectEvent) -> str:
    group = {"Secret": "secret", "Key": "key", "Certificate": "certificate"}[event.object_type]
    return (
        f"az keyvault {group} show --vault-name {event.vault_name} --name {event.object_name} "
        "--query attributes.expires"
    )


def alert_notification(alert: AlertEvent) -> Notification:
    """An Azure Monitor alert with what its kind carries (pitcrew.alerting.substance) and the
    severity it really has; Fired and Resolved share the alert id as dedup key."""
    resolved = alert.condition == "Resolved"
    substance = alert_substance(alert)
    severity: Severity = "info" if resolved else _ALERT_SEVERITY.get(substance.severity, "warning")
    targets = ", ".join(t.rsplit("/", 1)[-1] for t in alert.target_ids) or "unknown"
    facts = {
        "Rule": alert.rule,
        "Severity": substance.severity,
        "Condition": alert.condition,
        "Kind": substance.kind,
        "Signal": alert.signal_type or "unknown",
        "Targets": targets,
        "Fired": alert.fired_at.isoformat(),
    }
    if substance.severity != alert.severity:
        facts["Reported severity"] = alert.severity or "none"
    if alert.resolved_at:
        facts["Resolved"] = alert.resolved_at.isoformat()
    facts.update(substance.facts)
    actions: list[Action] = []
    # Every link here comes from the alert's sender: only absolute https links are kept, so a
    # runbook of `javascript:...`, `data:...` or `http://...` never reaches a person as a link.
    runbook = safe_link(alert.custom_properties.get("runbook"))
    if runbook:
        actions.append(Action(label="Follow the runbook", url=runbook))
    actions += [Action(label=label, url=url) for label, url in substance.links]
    portal = safe_link(
        "https://portal.azure.com/#view/Microsoft_Azure_Monitoring_Alerts/AlertDetails.ReactView"
        f"/alertId/{quote(alert.short_id, safe='')}"
    )
    if portal:
        actions.append(Action(label="Open the alert in the portal", url=portal))
    subject = substance.headline or alert.rule
    return Notification(
        id=f"alert:{alert.id}",
        dedup_key=alert.dedup_key,
        kind="alert",
        severity=severity,
        status="resolved" if resolved else "firing",
        title=f"[{alert.condition}] {subject} ({substance.severity}) on {targets}",
        summary=alert.description
        or f"Azure Monitor alert rule {alert.rule} {alert.condition.lower()}.",
        correlation_id=alert.alert_id,
        facts=facts,
        actions=tuple(actions),
        labels=alert_labels(alert),
        starts_at=alert.fired_at,
        ends_at=alert.resolved_at,
    )
