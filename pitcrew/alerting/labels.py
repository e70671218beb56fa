"""Every alert is a label set: what routes it, groups it, silences and inhibits it.

An Azure Monitor alert (Common Alert Schema) gets:

    kind=alert  alertRule  severity (critical|warning|info, mapped from Sev0-Sev4)
    sev (Sev0..Sev4 as sent)  monitoringService  signalType  subscription  resourceGroup
    resourceType  resource (the first target's id)  region  customProperties.<key>

Every other notification (dead letters, rotations, expiry, quota, pitcrew's own) carries the
labels its builder gave it, plus `kind`, `severity` and `alertRule` (the kind when the builder
named none). The severity label of an alert is its rule's, never the Resolved's `info`, so a
Fired and its Resolved route alike. Values are cut to 1,024 characters; names are kept to
letters, digits, `_`, `.` and `-`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from pitcrew.events import AlertEvent
from pitcrew.notify.model import Notification

SEVERITY_OF_SEV: dict[str, str] = {
    "Sev0": "critical", "Sev1": "critical", "Sev2": "warning", "Sev3": "info", "Sev4": "info",
}
MAX_VALUE = 1024
MAX_CUSTOM = 32
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
_ARM = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)(?:/resourcegroups/(?P<rg>[^/]+))?"
    r"(?:/providers/(?P<ns>[^/]+)/(?P<type>[^/]+))?", re.I,
)


def label_name(name: str) -> str:
    cleaned = _BAD_NAME_CHARS.sub("_", name)[:128]
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"[:128]


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_VALUE]


def alert_labels(alert: AlertEvent) -> dict[str, str]:
    """The label set of an Azure Monitor alert."""
    essentials = alert.essentials
    labels: dict[str, str] = {
        "kind": "alert",
        "alertRule": alert.rule,
        "severity": SEVERITY_OF_SEV.get(alert.severity, "warning"),
        "sev": alert.severity,
        "monitoringService": alert.monitoring_service,
        "signalType": alert.signal_type,
    }
    target = alert.target_ids[0] if alert.target_ids else ""
    if target:
        labels["resource"] = target
        found = _ARM.match(target)
        if found:
            labels["subscription"] = found["sub"]
            if found["rg"]:
                labels["resourceGroup"] = found["rg"]
            if found["ns"] and found["type"]:
                labels["resourceType"] = f"{found['ns']}/{found['type']}"
    for key, name in (("targetResourceGroup", "resourceGroup"),
                      ("targetResourceType", "resourceType"),
                      ("targetResourceRegion", "region"), ("region", "region")):
        value = essentials.get(key)
        if isinstance(value, str) and value:
            labels[name] = value
    if "region" not in labels:
        region = _region(alert.alert_context)
        if region:
            labels["region"] = region
    for count, (key, value) in enumerate(alert.custom_properties.items()):
        if count >= MAX_CUSTOM:
            break
        if isinstance(value, str | int | float | bool):
            labels[label_name(f"customProperties.{key}")] = _value(value)
    return {k: _value(v) for k, v in labels.items() if v != ""}


def _region(context: Any) -> str:
    """The region some alert contexts carry (activity log and resource health alerts)."""
    if not isinstance(context, Mapping):
        return ""
    for path in (("properties", "region"), ("region",), ("location",)):
        node: Any = context
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, str) and node:
            return node
    return ""


def notification_labels(notification: Notification) -> dict[str, str]:
    """The label set of any notification: its own labels, with `kind`, `severity` and
    `alertRule` filled in when the builder left them out."""
    labels = {label_name(k): _value(v) for k, v in notification.labels.items()}
    labels.setdefault("kind", notification.kind)
    labels.setdefault("severity", notification.severity)
    labels.setdefault("alertRule", notification.kind)
    return {k: v for k, v in labels.items() if v != ""}


def fingerprint(notification: Notification) -> str:
    """What identifies an alert across its Fired and Resolved: the dedup key."""
    return notification.dedup_key


def digest(text: str, length: int = 32) -> str:
    """A short, Table-key-safe digest of any string."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]
