"""The notification log: what each receiver was told about each group, and the decision, at
each flush, whether to tell it again.

A receiver is told when a firing alert is new to it (or its notification changed: a dead-letter
group crossing a threshold is news), when an alert it was told is firing has resolved, or when
the group still fires and `repeat_interval` has passed since it was last told (0: never
repeat). A Resolved goes only to a receiver that got the Fired, once: a resolved alert leaves
the log as soon as the receiver has been told. Muted alerts (silenced, inhibited) are neither
sent nor forgotten: one told before is not re-announced when its silence ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pitcrew.alerting.model import LogEntry, StoredAlert


@dataclass
class Decision:
    firing: list[StoredAlert] = field(default_factory=list)
    """Every unmuted firing alert of the group (what the notification lists as firing)."""
    resolved: list[StoredAlert] = field(default_factory=list)
    """Resolved alerts the receiver was told were firing."""
    new: list[StoredAlert] = field(default_factory=list)
    repeat: bool = False
    forgotten: list[StoredAlert] = field(default_factory=list)
    """Resolved alerts the receiver never heard of: dropped without a word."""

    @property
    def notify(self) -> bool:
        return bool(self.new or self.resolved or self.repeat)


def decide(alerts: list[StoredAlert], muted: set[str], entry: LogEntry | None,
           repeat_interval: float, now: datetime) -> Decision:
    told = entry.firing if entry else {}
    decision = Decision()
    for alert in alerts:
        if alert.status == "resolved":
            if alert.fingerprint in told:
                decision.resolved.append(alert)
            else:
                decision.forgotten.append(alert)
        elif alert.fingerprint not in muted:
            decision.firing.append(alert)
            if told.get(alert.fingerprint) != alert.notification.id:
                decision.new.append(alert)
    decision.repeat = bool(
        decision.firing and not decision.new and entry is not None and entry.sent_at
        and repeat_interval > 0 and (now - entry.sent_at).total_seconds() >= repeat_interval
    )
    return decision


def after(entry: LogEntry | None, decision: Decision, alerts: list[StoredAlert],
          muted: set[str], *, group_id: str, group_key: str, receiver: str,
          notification_id: str | None, now: datetime) -> LogEntry:
    """The log entry once the decision's notification (if any) was handed to the outbox."""
    told = dict(entry.firing) if entry else {}
    for alert in decision.firing:
        told[alert.fingerprint] = alert.notification.id
    for alert in decision.resolved + decision.forgotten:
        told.pop(alert.fingerprint, None)
    present = {a.fingerprint for a in alerts if a.status == "firing"}
    # A firing alert that left the group without a Resolved (policy change) is forgotten too.
    told = {fp: nid for fp, nid in told.items() if fp in present or fp in muted}
    out = LogEntry(group_id=group_id, receiver=receiver, group_key=group_key, firing=told,
                   sent_at=entry.sent_at if entry else None, seq=entry.seq if entry else 0,
                   last_notification=entry.last_notification if entry else "",
                   etag=entry.etag if entry else "")
    if notification_id is not None:
        out.sent_at = now
        out.seq += 1
        out.last_notification = notification_id
    return out
