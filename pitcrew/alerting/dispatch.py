"""Grouping and timing: every notification enters here (pitcrew.ports.Notifier) and leaves, one
notification per group, through the durable outbox to the group's receiver.

    send(n)      labels -> routing tree -> for each route: the alert joins its group (Table
                 rows, ETags) and the group's flush is scheduled: group_wait after the group
                 is created, group_interval after its last flush; a flush due now runs inline
    flush(id)    (queue trigger, sweep timer, or inline) takes the group's lease, drops muted
                 alerts (time intervals, silences, inhibition), asks the notification log
                 whether the receiver must be told, hands one notification listing the group's
                 alerts to the outbox, records it in the log, removes resolved alerts and
                 deletes the group once none is left
    resolve(fp)  marks an alert resolved wherever it is (a dead-letter group replayed,
                 archived or purged)
    sweep(now)   flushes every group whose flush is overdue (a lost queue message, a host
                 without queue triggers): the timer's safety net

Timing is the platform's: a storage queue message made visible after the wait (no instance
sleeps). State is shared by every instance through Table storage and ETags; the outbox
delivers at least once with a stable notification id, so a retried flush never tells a
receiver twice.

A notification whose status is "info", or a "resolved" one that resolves nothing and is not an
Azure Monitor alert (a rotation that succeeded without failing first), is news, not an alert:
it goes to the routed receivers once, on its own (silences still apply). A Resolved of an Azure
Monitor alert nobody was told about is not sent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from pitcrew.alerting import nflog
from pitcrew.alerting.inhibit import Inhibitor
from pitcrew.alerting.labels import digest, fingerprint, notification_labels
from pitcrew.alerting.model import Group, LogEntry, Silence, StoredAlert
from pitcrew.alerting.ports import AlertStore, FlushQueue, NotificationLog
from pitcrew.alerting.route import Route, find_route, match_routes, time_muted
from pitcrew.alerting.silence import Silences, silenced_by
from pitcrew.audit import AuditRecord, app_identity
from pitcrew.errors import Conflict
from pitcrew.notify.model import Dispatch, Notification, Status
from pitcrew.notify.outbox import Outbox
from pitcrew.parallel import map_in_threads
from pitcrew.policy import Policy
from pitcrew.ports import AuditLog, Channel
from pitcrew.state import utcnow

log = logging.getLogger(__name__)

FLUSH_LEASE_SECONDS = 120.0
MUTED_RECHECK_SECONDS = 60.0
MAX_LISTED_ALERTS = 20
_TRIES = 8


class Pipeline:
    def __init__(self, policy: Policy, tree: Route, *, alerts: AlertStore, nflog: NotificationLog,
                 silences: Silences, outbox: Outbox, receivers: Mapping[str, Channel],
                 queue: FlushQueue, audit: AuditLog) -> None:
        self.policy = policy
        self.tree = tree
        self.store = alerts
        self.nflog = nflog
        self.silences = silences
        self.outbox = outbox
        self.receivers = receivers
        self.queue = queue
        self.audit = audit
        self.inhibitor = Inhibitor(policy.inhibit_rules)

    # ------------------------------------------------------------------ in

    def receivers_for(self, notification: Notification) -> list[str]:
        """The receivers the routing tree picks for a notification (never none)."""
        routes = match_routes(self.tree, notification_labels(notification))
        return list(dict.fromkeys(r.receiver for r in routes))

    channels_for = receivers_for  # the earlier router's name

    def send(self, notification: Notification, *, now: datetime | None = None) -> Dispatch:
        return self.send_many([notification], now=now)[0]

    def send_many(self, notifications: Sequence[Notification], *, now: datetime | None = None,
                  concurrency: int = 1) -> list[Dispatch]:
        """Each notification as `send` would take it alone, one Dispatch each, in order; the
        firing ones that land in one group (a delivery's expiry alerts of one rule, say) join
        it together: the group read or created once, their alert rows inserted in one
        transaction per 100, one flush or schedule for all of them. Groups are joined
        `concurrency` at a time; when one fails, the others are still joined and the first
        failure is raised (joining again is harmless: an alert the receiver was told of is
        not told twice)."""
        now = now or utcnow()
        dispatches: dict[int, Dispatch] = {}
        joining: dict[str, _Joining] = {}
        routed: dict[int, tuple[list[str], dict[str, list[str]]]] = {}
        silences: list[Silence] | None = None
        for index, notification in enumerate(notifications):
            if notification.status != "firing":
                dispatches[index] = self._send_news_or_resolved(notification, now)
                continue
            if silences is None:  # read once for this call and its inline flushes
                silences = self.silences.active(now)
            labels = notification_labels(notification)
            fp = fingerprint(notification)
            group_ids = []
            for route in match_routes(self.tree, labels):
                key = route.group_key(labels, fp)
                group_id = digest(key)
                # The same alert twice in one call: its later state is the one kept.
                joining.setdefault(group_id, _Joining(route, key, labels)).alerts[fp] = (
                    notification, labels)
                group_ids.append(group_id)
            routed[index] = group_ids, self.mutes(labels, fp, now, silences)
        joined = self._join_all(joining, now, silences, concurrency)
        for index, (group_ids, muted) in routed.items():
            dispatch = Dispatch()
            for group_id in group_ids:
                dispatch.merge(joined[group_id])
            if muted and not (dispatch.delivered or dispatch.queued or dispatch.already):
                dispatch.grouped.clear()
                dispatch.muted_by = muted
            dispatches[index] = dispatch
        return [dispatches[index] for index in range(len(notifications))]

    def _send_news_or_resolved(self, notification: Notification, now: datetime) -> Dispatch:
        labels = notification_labels(notification)
        if notification.status == "resolved":
            held = self.store.find_alerts(fingerprint(notification))
            if held:
                return self._resolve(held, notification, now)
            if notification.kind == "alert":
                return Dispatch(reason="no receiver was told this alert fired")
        return self._one_shot(notification, labels, now)

    def _join_all(self, joining: Mapping[str, _Joining], now: datetime,
                  silences: list[Silence] | None, concurrency: int) -> dict[str, Dispatch]:
        results = map_in_threads(lambda group_id: self._join(group_id, joining[group_id], now,
                                                             silences),
                                 list(joining), concurrency=concurrency)
        failed = next((result for result in results if isinstance(result, Exception)), None)
        if failed is not None:
            raise failed
        return {group_id: result for group_id, result in zip(joining, results, strict=True)
                if isinstance(result, Dispatch)}

    def resolve(self, dedup_key: str, *, summary: str, now: datetime | None = None) -> Dispatch:
        """Resolve the alert with this fingerprint wherever it is held (nothing when none)."""
        now = now or utcnow()
        held = self.store.find_alerts(dedup_key)
        if not held:
            return Dispatch(reason="nothing to resolve")
        first = held[0].notification
        resolved = replace(first, id=f"{first.id}:resolved", status="resolved",
                           severity="info", title=f"Resolved: {first.title}", summary=summary,
                           created_at=now, ends_at=now)
        return self._resolve(held, resolved, now)

    def _resolve(self, held: list[StoredAlert], notification: Notification,
                 now: datetime) -> Dispatch:
        dispatch = Dispatch()
        for alert in held:
            for _ in range(_TRIES):
                current = self.store.get_alert(alert.group_id, alert.fingerprint)
                if current is None or current.status == "resolved":
                    break
                current.status = "resolved"
                current.ends_at = notification.ends_at or now
                current.updated_at = now
                current.notification = replace(notification, ends_at=current.ends_at,
                                               labels=current.labels)
                try:
                    self.store.put_alert(current)
                except Conflict:
                    continue
                break
            group = self.store.get_group(alert.group_id)
            if group is not None:
                route = find_route(self.tree, group.route) or self.tree
                dispatch.merge(self._schedule(group, route, now))
        return dispatch

    def _join(self, group_id: str, joining: _Joining, now: datetime,
              silences: list[Silence] | None = None) -> Dispatch:
        """The alerts join their group (created when it is not there), then its flush runs now
        when due, or is scheduled."""
        route = joining.route
        new = Group(
            id=group_id, key=joining.key, route=route.id, receiver=route.receiver,
            labels=route.group_labels(joining.labels) if not route.grouping_off else {},
            created_at=now,
        )
        flush_at_once = route.group_wait <= 0
        if flush_at_once:
            # Created scheduled and leased for the flush that follows: no second write.
            new.next_flush_at = now
            new.flushing_until = now + timedelta(seconds=FLUSH_LEASE_SECONDS)
        if route.grouping_off:
            # A group of one alert is nearly always new: insert first, read only if it exists.
            group = self.store.create_group(new)
        else:
            group = self.store.get_group(group_id) or self.store.create_group(new)
        alerts = [
            StoredAlert(group_id=group_id, fingerprint=fp, labels=labels, status="firing",
                        starts_at=now, updated_at=now,
                        notification=_stored(notification, labels, now))
            for fp, (notification, labels) in joining.alerts.items()
        ]
        # New alerts are inserted without a read first (insert-only: an existing row is left
        # out, then read and replaced on its ETag).
        inserted = {alert.fingerprint for alert in self.store.insert_alerts(alerts)}
        stored = [alert if alert.fingerprint in inserted else self._replace_alert(alert, now)
                  for alert in alerts]
        if group is new and flush_at_once:
            # This call made the group, so it holds the group's lease and knows its alerts
            # (one that arrives meanwhile is found by the flush's read after delivering).
            known = [alert for alert in stored if alert is not None]
            return self.flush(group.id, now=now, audited=False, group=group, silences=silences,
                              leased=True, alerts=known if len(known) == len(stored) else None)
        return self._schedule(group, route, now, silences)

    def _replace_alert(self, alert: StoredAlert, now: datetime) -> StoredAlert | None:
        """An alert whose row exists: replaced on its ETag, still firing since it began."""
        for _ in range(_TRIES):
            current = self.store.get_alert(alert.group_id, alert.fingerprint)
            candidate = replace(
                alert,
                starts_at=current.starts_at if current and current.status == "firing" else now,
                etag=current.etag if current else "",
            )
            try:
                self.store.put_alert(candidate)
            except Conflict:
                continue
            return candidate
        return None

    def _schedule(self, group: Group, route: Route, now: datetime,
                  silences: list[Silence] | None = None) -> Dispatch:
        """Make sure the group's flush is scheduled no later than a change may be sent (group_wait
        after the group began, group_interval after its last flush); run it now when due."""
        for _ in range(_TRIES):
            if group.last_flush_at is None:
                earliest = group.created_at + timedelta(seconds=route.group_wait)
            else:
                earliest = group.last_flush_at + timedelta(seconds=route.group_interval)
            due = max(earliest, now)
            leased = _leased(group, now)
            scheduled = group.next_flush_at is not None and group.next_flush_at <= due
            if scheduled and not leased:
                if group.next_flush_at is not None and group.next_flush_at <= now:
                    return self.flush(group.id, now=now, audited=False, group=group,
                                      silences=silences)
                return Dispatch(grouped=[group.receiver])
            # Written either way: the flush moves earlier, or a flush is under way and may
            # have read the alerts before this change. Rewriting its row (as read) changes the
            # ETag, so that flush's closing conditional save fails and it looks again; when
            # that save came first, this write fails instead and the loop sees the group as
            # the flush left it.
            flush_now = False
            if not scheduled:
                group.next_flush_at = due
                flush_now = due <= now and not leased
                if flush_now:
                    # Scheduled and leased for the flush in one conditional write.
                    group.flushing_until = now + timedelta(seconds=FLUSH_LEASE_SECONDS)
            try:
                self.store.save_group(group)
            except Conflict:
                fresh = self.store.get_group(group.id)
                if fresh is None:
                    return Dispatch(grouped=[group.receiver])
                group = fresh
                continue
            if flush_now:
                # The row just saved, with its flush lease (its ETag is current): not read back.
                return self.flush(group.id, now=now, audited=False, group=group,
                                  silences=silences, leased=True)
            if not scheduled and due > now:
                self._enqueue(group, now)
            return Dispatch(grouped=[group.receiver])
        return Dispatch(grouped=[group.receiver])

    def _enqueue(self, group: Group, now: datetime) -> None:
        assert group.next_flush_at is not None
        try:
            self.queue.schedule(group.id, (group.next_flush_at - now).total_seconds())
        except Exception:
            # The sweep timer flushes any overdue group: a lost wake-up only delays it.
            log.exception("alerting: could not schedule the flush of group %s; the sweep "
                          "timer will", group.key)

    # ------------------------------------------------------------------ flush

    def flush(self, group_id: str, *, now: datetime | None = None,
              audited: bool = True, group: Group | None = None,
              silences: list[Silence] | None = None, leased: bool = False,
              alerts: list[StoredAlert] | None = None) -> Dispatch:
        """Flush one group if it is due. Safe to call any number of times, from anywhere.
        `audited=False`: the caller audits what became of the notification that set it off
        (an inline flush, from `send`). `group`: the row the caller just saved (its ETag is
        current, so it is not read back; a stale one only loses the lease race and is re-read);
        `silences`: the active silences the caller read at `now`; `leased`: the caller saved
        `group` with this flush's lease already; `alerts`: the group's alerts, when the caller
        created the group and holds its lease since (not read back)."""
        now = now or utcnow()
        dispatch = Dispatch()
        own_lease = group.flushing_until if leased and group is not None else None
        for round_ in range(3):  # another round when alerts changed while flushing
            if round_ or group is None:
                group = self.store.get_group(group_id)
                # A joiner rewrote the row under this flush's lease (see _schedule): the lease
                # is still this flush's, so it goes on, reading the alerts again.
                leased = own_lease is not None and group is not None \
                    and group.flushing_until == own_lease
                alerts = None
            if group is None or group.next_flush_at is None:
                return dispatch
            if not leased:
                if group.next_flush_at > now + timedelta(seconds=1) or _leased(group, now):
                    dispatch.grouped.append(group.receiver)
                    return dispatch
                group.flushing_until = now + timedelta(seconds=FLUSH_LEASE_SECONDS)
                try:
                    self.store.save_group(group)
                except Conflict:
                    continue
                own_lease = group.flushing_until
            again = self._flush(group, now, dispatch, audited, silences, alerts)
            silences = None  # a later round reads them again
            if not again:
                return dispatch
        return dispatch

    def _flush(self, group: Group, now: datetime, dispatch: Dispatch, audited: bool,
               silences: list[Silence] | None = None,
               alerts: list[StoredAlert] | None = None) -> bool:
        route = find_route(self.tree, group.route) or self.tree
        # Alerts the caller knows (it made the group and holds its lease since): any alert
        # that joins meanwhile rewrites the group row (_schedule), so the closing conditional
        # save fails and the next round reads them; no read-back needed after delivering.
        created = alerts is not None
        if alerts is None:
            alerts = self.store.alerts(group.id)
        muted_route = time_muted(route, self.policy.time_intervals, now)
        muted: dict[str, dict[str, list[str]]] = {}
        if muted_route is None:
            if silences is None:
                silences = self.silences.active(now)
            # Every firing alert (a scan of the alerts table) only matters to inhibition rules.
            firing = [(a.fingerprint, a.labels) for a in self.store.firing_alerts()] \
                if self.inhibitor.rules else []
            for alert in alerts:
                if alert.status != "firing":
                    continue
                why = self.mutes(alert.labels, alert.fingerprint, now, silences, firing)
                if why:
                    muted[alert.fingerprint] = why
        notification_id = None
        entry = None
        if muted_route is None:
            decision = nflog.decide(alerts, set(muted), None, route.repeat_interval, now)
            # A group just made has no log unless an earlier group of its key left one, and
            # a notification of one alert carries that alert's own id (so the outbox knows a
            # repeat of it): it needs no read first. A notification listing several alerts is
            # numbered by the log, so the log is read for it.
            if not (created and _single(decision)):
                entry = self.nflog.get(group.id, group.receiver)
                decision = nflog.decide(alerts, set(muted), entry, route.repeat_interval, now)
        else:
            decision = nflog.Decision()
            dispatch.muted_by.setdefault("timeIntervals", []).append(muted_route)
        for why in muted.values():
            for key, values in why.items():
                dispatch.muted_by.setdefault(key, [])
                dispatch.muted_by[key] += [v for v in values if v not in dispatch.muted_by[key]]
        if decision.notify:
            notification = self._group_notification(group, decision, entry)
            notification_id = notification.id
            result = self.deliver_to(group.receiver, notification)
            getattr(dispatch, {"delivered": "delivered", "already": "already"}.get(
                result, "queued")).append(group.receiver)
            if audited:
                self._audit_flush(group, notification, decision, result)
        elif decision.firing:
            # Every firing alert was handed to the receiver before (a retried delivery
            # announcing them again): say where that notification is, never "no channel".
            self._told_before(group.receiver, entry, dispatch)
        updated = None
        if muted_route is None:
            updated = self._log(entry, decision, alerts, set(muted), group, notification_id,
                                now)
        # Resolved alerts the receiver has now been told of (or never heard of) leave the group.
        gone = decision.resolved + decision.forgotten if muted_route is None else []
        for alert in gone:
            self.store.delete_alert(alert)
        if created:
            remaining = [alert for alert in alerts if alert not in gone]
        else:
            remaining = self.store.alerts(group.id)
        told = updated.firing if updated is not None else {}
        # Anything the receiver has not been told yet (it arrived while this flush ran, or a
        # delete lost a race) makes another round now; muted alerts wait for their tick.
        changed = muted_route is None and any(
            a.status == "resolved" or (
                a.fingerprint not in muted and told.get(a.fingerprint) != a.notification.id)
            for a in remaining
        )
        group.last_flush_at = now if notification_id is not None or group.last_flush_at is None \
            else group.last_flush_at
        group.flushing_until = None
        if not remaining:
            return not self.store.delete_group(group)  # changed meanwhile: flush again
        if changed:
            group.next_flush_at = now
        else:
            has_muted = muted_route is not None or bool(muted)
            group.next_flush_at = self._next_tick(route, now, has_muted)
        try:
            self.store.save_group(group)
        except Conflict:
            return True
        if group.next_flush_at is None:
            return False
        if group.next_flush_at <= now:
            return True
        self._enqueue(group, now)
        return False

    def _log(self, entry: LogEntry | None, decision: nflog.Decision,
             alerts: list[StoredAlert], muted: set[str], group: Group,
             notification_id: str | None, now: datetime) -> LogEntry:
        """Record in the notification log what the receiver was just told. An entry not read
        first (a group just made) is inserted; when an earlier group of the key left one, it
        is read and the record merged into it."""
        for _ in range(_TRIES):
            updated = nflog.after(entry, decision, alerts, muted, group_id=group.id,
                                  group_key=group.key, receiver=group.receiver,
                                  notification_id=notification_id, now=now)
            try:
                self.nflog.save(updated)
            except Conflict:
                if updated.etag:
                    break
                entry = self.nflog.get(group.id, group.receiver)
                continue
            return updated
        log.warning("alerting: the notification log of group %s changed under a flush",
                    group.key)
        return updated

    def _told_before(self, receiver: str, entry: LogEntry | None, dispatch: Dispatch) -> None:
        """Delivered, or still waiting in the outbox for its retry: the log records a
        notification when it is handed to the outbox, not when the receiver took it."""
        last = self.outbox.get(receiver, entry.last_notification) \
            if entry is not None and entry.last_notification else None
        where = dispatch.queued if last is not None and last.status != "delivered" \
            else dispatch.already
        if receiver not in where:
            where.append(receiver)

    def _audit_flush(self, group: Group, notification: Notification,
                     decision: nflog.Decision, result: str) -> None:
        self.audit.append(AuditRecord(
            actor=app_identity(), action="alerting.notify", target=f"group/{group.id}",
            outcome="succeeded" if result in ("delivered", "already") else "queued",
            correlation_id=notification.id,
            details={"groupKey": group.key[:500], "receiver": group.receiver,
                     "notification": notification.id, "status": notification.status,
                     "firing": len(decision.firing), "resolved": len(decision.resolved),
                     "repeat": decision.repeat},
        ))

    def _next_tick(self, route: Route, now: datetime, has_muted: bool) -> datetime | None:
        """The next time a group with alerts left is looked at: every group_interval (changes
        wait for it), else to re-check muted alerts, else when a reminder is due."""
        if route.group_interval:
            seconds = route.group_interval
        elif has_muted:
            seconds = MUTED_RECHECK_SECONDS
        else:
            seconds = route.repeat_interval
        return now + timedelta(seconds=seconds) if seconds else None

    def mutes(self, labels: dict[str, str], fp: str, now: datetime,
               silences: list[Silence] | None = None,
               firing: list[tuple[str, dict[str, str]]] | None = None) -> dict[str, list[str]]:
        if silences is None:
            silences = self.silences.active(now)
        why: dict[str, list[str]] = {}
        ids = silenced_by(silences, labels, now)
        if ids:
            why["silences"] = ids
        if self.inhibitor.rules:
            if firing is None:
                firing = [(a.fingerprint, a.labels) for a in self.store.firing_alerts()]
            sources = self.inhibitor.inhibited_by(labels, fp, firing)
            if sources:
                why["inhibitedBy"] = sources
        return why

    def _group_notification(self, group: Group, decision: nflog.Decision,
                            entry: object) -> Notification:
        listed = decision.firing + decision.resolved
        firing = decision.firing
        seq = (getattr(entry, "seq", 0) or 0) + 1
        if len(listed) == 1 and not decision.repeat:
            # One alert: its own notification, id and all (a retry finds the same outbox row).
            one = listed[0].notification
            return replace(one, group_key=group.key, alerts=(one,),
                           status="resolved" if not firing else "firing")
        items = tuple(a.notification for a in listed[:MAX_LISTED_ALERTS])
        first = (firing or decision.resolved)[0].notification
        status: Status = "firing" if firing else "resolved"
        rule = group.labels.get("alertRule") or first.labels.get("alertRule") or first.kind
        counts = f"{len(firing)} firing" + (
            f", {len(decision.resolved)} resolved" if decision.resolved else "")
        order = {"critical": 0, "warning": 1, "info": 2}
        severity = min((a.notification.severity for a in firing), key=lambda s: order[s],
                       default="info")
        facts = {"Group": group.key[:300], "Firing": str(len(firing)),
                 "Resolved": str(len(decision.resolved))}
        if len(listed) > MAX_LISTED_ALERTS:
            facts["Listed"] = f"the first {MAX_LISTED_ALERTS} of {len(listed)}"
        lines = [f"- [{a.status}] {a.notification.title}" for a in listed[:MAX_LISTED_ALERTS]]
        # The id names what the notification says, not only its place in the log: after a
        # flush that delivered but died before its log was saved, the same alerts make the
        # same id (the outbox sends it once) while a group that gained an alert meanwhile
        # makes a new one (the outbox would otherwise take it for the one already sent).
        said = hashlib.sha256("\n".join(sorted(
            f"{a.fingerprint} {a.status} {a.notification.id}" for a in listed)).encode())
        return Notification(
            id=f"group:{group.id}:{seq}:{said.hexdigest()[:12]}",
            dedup_key=f"group:{group.id}",
            kind=first.kind if all(a.notification.kind == first.kind for a in listed)
            else "alert",
            severity=severity,  # type: ignore[arg-type]
            status=status,
            title=f"[{status.upper()}: {counts}] {rule}"
            + (" (reminder)" if decision.repeat else ""),
            summary="\n".join(lines),
            correlation_id=group.id,
            facts=facts,
            actions=first.actions,
            labels=dict(group.labels),
            group_key=group.key,
            alerts=items,
            starts_at=min(a.starts_at for a in listed),
        )

    def deliver_to(self, receiver: str, notification: Notification) -> str:
        """Hand a notification to the outbox for one receiver and attempt it once now."""
        entry = self.outbox.enqueue(receiver, notification)
        channel = self.receivers.get(receiver)
        if entry.created:
            return self.outbox.attempt(entry, channel, leased=True)
        return self.outbox.attempt_existing(entry, channel)

    def _one_shot(self, notification: Notification, labels: dict[str, str],
                  now: datetime) -> Dispatch:
        dispatch = Dispatch()
        muted = self.mutes(labels, fingerprint(notification), now)
        if muted:
            dispatch.muted_by = muted
            return dispatch
        for route in match_routes(self.tree, labels):
            if route.receiver in dispatch.delivered + dispatch.queued + dispatch.already:
                continue
            why = time_muted(route, self.policy.time_intervals, now)
            if why:
                dispatch.muted_by.setdefault("timeIntervals", []).append(why)
                continue
            result = self.deliver_to(route.receiver, replace(notification, labels=labels))
            getattr(dispatch, {"delivered": "delivered", "already": "already"}.get(
                result, "queued")).append(route.receiver)
        return dispatch

    # ------------------------------------------------------------------ timers

    def sweep(self, *, now: datetime | None = None) -> list[str]:
        """Flush every group whose flush is due (the safety net behind the queue)."""
        now = now or utcnow()
        flushed = []
        for group in self.store.groups():
            if group.next_flush_at is not None and group.next_flush_at <= now and not _leased(
                group, now
            ):
                try:
                    self.flush(group.id, now=now)
                except Exception:
                    log.exception("alerting: flushing group %s failed; retried next sweep",
                                  group.key)
                    continue
                flushed.append(group.id)
        return flushed


@dataclass
class _Joining:
    """Alerts of one call on their way into one group: its route, key, the labels of the first
    (the group's labels come from them) and each alert by fingerprint."""

    route: Route
    key: str
    labels: dict[str, str]
    alerts: dict[str, tuple[Notification, dict[str, str]]] = field(default_factory=dict)


def _stored(notification: Notification, labels: dict[str, str], now: datetime) -> Notification:
    stored = notification if notification.labels == labels else replace(
        notification, labels=labels)
    return replace(stored, starts_at=stored.starts_at or now)


def _single(decision: nflog.Decision) -> bool:
    """The decision's notification, if any, is one alert's own (see _group_notification)."""
    return len(decision.firing) + len(decision.resolved) <= 1 and not decision.repeat


def _leased(group: Group, now: datetime) -> bool:
    return group.flushing_until is not None and group.flushing_until > now
