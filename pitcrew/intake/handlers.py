"""The handlers intake picks from, one registry keyed by name, in the order they are tried.
A handler says which events it accepts, parses the envelope into its typed event (before
anything is claimed) and acts; an area adds its handler with one `HANDLERS.add` line here.
The Key Vault and Azure Monitor handlers live here with the words of what they announce: what
expires or fired, when, where, and what to do about it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

from pitcrew.alerting.labels import SEVERITY_OF_SEV, alert_labels
from pitcrew.alerting.substance import alert_substance
from pitcrew.audit import AuditRecord, app_identity
from pitcrew.bootstrap import Services
from pitcrew.deadletter.events import is_servicebus_deadletter_event, servicebus_deadletter_event
from pitcrew.deadletter.hooks import handle_servicebus_deadletter, ingest_for_alert
from pitcrew.events import AlertEvent, Event, KeyVaultObjectEvent, is_keyvault_event, keyvault_event
from pitcrew.housekeeping.certificates import handle_certificate_event
from pitcrew.housekeeping.keys import handle_key_event
from pitcrew.links import safe_link
from pitcrew.notify.model import Action, Dispatch, Notification, Severity
from pitcrew.parallel import map_in_threads
from pitcrew.policy import Policy
from pitcrew.quota.intake import handle_quota_alert, is_quota_alert
from pitcrew.registry import Registry
from pitcrew.rotation.api import rotate_on_event


@dataclass(frozen=True)
class Handler:
    accepts: Callable[[Event], bool]
    parse: Callable[[Event], Any]
    handle: Callable[[Any, Services], str]
    # The events of one delivery together, where an area can act on them for fewer round
    # trips than one by one (`concurrency` at a time where it acts one by one): one result
    # per event, in order, its detail or the exception it raised.
    handle_many: Callable[..., list[str | Exception]] | None = None


def announce(services: Services, notification: Notification, *, action: str, target: str,
             correlation_id: str, details: Mapping[str, Any]) -> Dispatch:
    """Send a notification through the outbox and audit what became of it."""
    return audited(services, notification, services.router.send(notification), action=action,
                   target=target, correlation_id=correlation_id, details=details)


def audited(services: Services, notification: Notification, dispatch: Dispatch, *, action: str,
            target: str, correlation_id: str, details: Mapping[str, Any]) -> Dispatch:
    """Audit what became of a notification sent."""
    services.audit.append(AuditRecord(
        actor=app_identity(),
        action=action,
        target=target,
        outcome=dispatch.outcome,  # type: ignore[arg-type]
        correlation_id=correlation_id,
        details={**details, "notification": notification.id, **dispatch.to_dict()},
    ))
    return dispatch


# ------------------------------------------------------------------ Key Vault

_EXPIRY_CONDITIONS = ("NearExpiry", "Expired")


def handle_keyvault(kv: KeyVaultObjectEvent, services: Services) -> str:
    result = handle_keyvault_many([kv], services)[0]
    if isinstance(result, Exception):
        raise result
    return result


def handle_keyvault_many(kvs: Sequence[KeyVaultObjectEvent], services: Services, *,
                         concurrency: int = 1) -> list[str | Exception]:
    """Key Vault events: each acted on alone (`concurrency` at a time), then the expiries
    nobody acts on announced together, so that the alerts of one group join it at once."""
    results: list[str | Exception | None] = list(map_in_threads(
        lambda kv: _act_on_keyvault(kv, services), kvs, concurrency=concurrency))
    waiting = [index for index, result in enumerate(results) if result is None]
    notifications = [expiry_notification(kvs[index], services.policy) for index in waiting]
    try:
        dispatches = services.router.send_many(notifications, concurrency=concurrency)
    except Exception as exc:
        # Not one of them is known to be announced: each fails, so each is retried (the
        # alerting pipeline does not tell a receiver the same alert twice).
        return [exc if result is None else result for result in results]
    for index, notification, dispatch in zip(waiting, notifications, dispatches, strict=True):
        kv = kvs[index]
        results[index] = audited(
            services, notification, dispatch, action="notify.expiry", target=kv.target,
            correlation_id=kv.id,
            details={"eventType": kv.event.type, "version": kv.version,
                     "expires": kv.expires.isoformat() if kv.expires else None},
        ).detail
    return cast(list[str | Exception], results)  # every None was replaced just above


def _act_on_keyvault(kv: KeyVaultObjectEvent, services: Services) -> str | None:
    """What a Key Vault event does short of announcing an expiry (None: announce it)."""
    if kv.condition == "NewVersionCreated":
        return resolve_expiry(kv, services)
    if kv.condition not in _EXPIRY_CONDITIONS:
        return f"no action for {kv.condition}"
    # When a rotation strategy owns the secret, the rotation engine acts instead of a person.
    # Keys and certificates: Key Vault's rotate / renewal, when expiry.keys / .certificates say.
    acting = {"Key": handle_key_event, "Certificate": handle_certificate_event}.get(
        kv.object_type, rotate_on_event)
    return acting(kv, services)


def resolve_expiry(kv: KeyVaultObjectEvent, services: Services) -> str:
    """A new version (rotated by pitcrew or by a person) ends the expiry alert of the object:
    the receivers that were told it fired are told it is resolved, once, and its reminders
    stop. Nothing is sent when no expiry alert was firing."""
    dedup_key = expiry_notification(kv, services.policy).dedup_key
    dispatch = services.router.resolve(
        dedup_key, summary=f"{kv.object_type} {kv.vault_name}/{kv.object_name} has a new "
                           f"version {kv.version}")
    if dispatch.reason == "nothing to resolve":
        return "no expiry alert to resolve"
    services.audit.append(AuditRecord(
        actor=app_identity(), action="notify.expiry.resolved", target=kv.target,
        outcome=dispatch.outcome,  # type: ignore[arg-type]
        correlation_id=kv.id,
        details={"eventType": kv.event.type, "version": kv.version, **dispatch.to_dict()},
    ))
    return f"expiry alert resolved: {dispatch.detail}"


_URGENT_DAYS = 7  # under this many days left, an expiry is critical


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


def _when(moment: datetime, now: datetime) -> str:
    days = (moment - now).total_seconds() / 86400
    stamp = moment.strftime("%Y-%m-%d %H:%M UTC")
    if days >= 1:
        return f"on {stamp} (in {int(days)} day{'s' if int(days) != 1 else ''})"
    if days >= 0:
        return f"on {stamp} (in {int(days * 24)} hours)"
    ago = int(-days)
    return f"on {stamp} ({ago} day{'s' if ago != 1 else ''} ago)"


# ------------------------------------------------------------------ alerts


def handle_alert(alert: AlertEvent, services: Services) -> str:
    """An Azure Monitor alert: one notification; a dead-letter depth alert also ingests; an
    alert an area registered in ALERT_HANDLERS (quota) is that area's."""
    special = ALERT_HANDLERS.first(lambda handler: handler.accepts(alert))
    if special is not None:
        return special.handle(alert, services)
    detail = announce(
        services, alert_notification(alert), action="notify.alert",
        target=alert.target_ids[0] if alert.target_ids else alert.rule,
        correlation_id=alert.alert_id,
        details={"rule": alert.rule, "condition": alert.condition, "severity": alert.severity},
    ).detail
    ingested = ingest_for_alert(alert, services)
    if ingested:
        detail += "; ingested " + ", ".join(ingested)
    return detail


def alert_notification(alert: AlertEvent) -> Notification:
    """An Azure Monitor alert with what its kind carries (pitcrew.alerting.substance) and the
    severity it really has; Fired and Resolved share the alert id as dedup key."""
    resolved = alert.condition == "Resolved"
    substance = alert_substance(alert)
    severity = cast(Severity, "info" if resolved
                    else SEVERITY_OF_SEV.get(substance.severity, "warning"))
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


HANDLERS: Registry[Handler] = Registry("intake handler")
HANDLERS.add("keyvault", Handler(is_keyvault_event, keyvault_event, handle_keyvault,
                                 handle_many=handle_keyvault_many))
HANDLERS.add("servicebus-deadletter", Handler(is_servicebus_deadletter_event,
                                              servicebus_deadletter_event,
                                              handle_servicebus_deadletter))


@dataclass(frozen=True)
class AlertHandler:
    accepts: Callable[[AlertEvent], bool]
    handle: Callable[[AlertEvent, Services], str]


ALERT_HANDLERS: Registry[AlertHandler] = Registry("alert handler")
ALERT_HANDLERS.add("quota", AlertHandler(is_quota_alert, handle_quota_alert))


def handler_for(event: Event) -> Handler | None:
    """The first registered handler that accepts the event; None when none does."""
    return HANDLERS.first(lambda handler: handler.accepts(event))
