"""The handlers intake picks from, one registry keyed by name, in the order they are tried.
A handler says which events it accepts, parses the envelope into its typed event (before
anything is claimed) and acts; an area adds its handler with one `HANDLERS.add` line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.bootstrap import Services
from pitcrew.deadletter.events import is_servicebus_deadletter_event, servicebus_deadletter_event
from pitcrew.deadletter.hooks import handle_servicebus_deadletter, ingest_for_alert
from pitcrew.events import AlertEvent, Event, KeyVaultObjectEvent, is_keyvault_event, keyvault_event
from pitcrew.housekeeping.certificates import handle_certificate_event
from pitcrew.housekeeping.keys import handle_key_event
from pitcrew.notify.messages import alert_notification, expiry_notification
from pitcrew.notify.model import Dispatch, Notification
from pitcrew.parallel import map_in_threads
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
