"""The entry points of alerting: the operator routes (`GET /api/alerts`, `/api/silences`,
`/api/silences/{id}`, `/api/notifications`), the flush queue trigger and the sweep timer
(overdue groups and the watchdog over pitcrew's own deliveries). Plain data in, HttpResult
out."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from pitcrew import links
from pitcrew.alerting.dispatch import Pipeline
from pitcrew.alerting.labels import digest
from pitcrew.alerting.policy import Matcher, parse_duration
from pitcrew.audit import AuditRecord, Outcome, app_identity
from pitcrew.auth import Role, require
from pitcrew.bootstrap import Services, get_services
from pitcrew.errors import InvalidInput, NotFound
from pitcrew.http.errors import HttpResult, http_errors
from pitcrew.http.models import PageQuery, RequestModel, choice
from pitcrew.http.paging import encode_token
from pitcrew.notify.model import Notification, OutboxEntry, notice
from pitcrew.state import utcnow

log = logging.getLogger(__name__)
MAX_MATCHERS = 20
MAX_COMMENT = 1000
NOTIFICATION_STATUSES = ("pending", "failed", "delivered")
SILENCE_STATES = ("pending", "active", "expired")


# ------------------------------------------------------------------ triggers


def flush_group(message: str) -> None:
    """The `flush_alert_group` queue trigger: a group is due (or a stale wake-up: ignored)."""
    group_id = message.strip()
    if not group_id or len(group_id) > 64 or not group_id.isalnum():
        log.warning("alerting: ignored a flush message that is not a group id")
        return
    get_services().alerting.flush(group_id)


def sweep() -> dict[str, int]:
    """The `sweep_alert_groups` timer: flush overdue groups, then watch stuck notifications."""
    services = get_services()
    flushed = services.alerting.sweep()
    raised = watch_deliveries(services)
    if flushed or raised:
        log.info("alerting sweep: %d group(s) flushed, %d stuck notification(s) raised",
                 len(flushed), raised)
    return {"flushed": len(flushed), "stuck": raised}


def watch_deliveries(services: Services, *, now: datetime | None = None) -> int:
    """pitcrew watches itself: a notification still undelivered after
    `alerting.watchdog.after_attempts` attempts, or older than `older_than`, raises one
    pitcrew alert (kind `pitcrew`) to the watchdog's receiver (else the root's), delivered
    through the outbox once per stuck notification."""
    now = now or utcnow()
    settings = services.policy.alerting.watchdog
    pipeline = services.alerting
    target = settings.receiver or pipeline.tree.receiver
    raised = 0
    for entry in services.outbox.pending():
        if entry.notification.kind == "pitcrew" and entry.notification.id.startswith(
            "pitcrew:stuck:"
        ):
            continue  # never an alert about an alert about an alert
        old = entry.created_at is not None and (now - entry.created_at) >= timedelta(
            seconds=settings.older_than)
        if entry.attempts < settings.after_attempts and not old:
            continue
        notification = stuck_notification(entry, now)
        existing = services.outbox.get(target, notification.id)
        if existing is not None:
            continue
        result = pipeline.deliver_to(target, notification)
        raised += 1
        services.audit.append(AuditRecord(
            actor=app_identity(), action="alerting.watchdog", target=f"receiver/{entry.channel}",
            outcome="succeeded" if result in ("delivered", "already") else "queued",
            correlation_id=notification.id,
            details={"stuck": entry.notification.id, "attempts": entry.attempts,
                     "lastError": entry.last_error[:300], "raisedTo": target},
        ))
    return raised


def stuck_notification(entry: OutboxEntry, now: datetime) -> Notification:
    stuck = entry.notification
    age = f"since {entry.created_at:%Y-%m-%d %H:%M UTC}" if entry.created_at else ""
    return notice(
        "pitcrew", "pitcrew-notification-stuck", "critical",
        id=f"pitcrew:stuck:{entry.channel}:{digest(stuck.id)}",
        dedup_key=f"pitcrew:stuck:{entry.channel}",
        title=f"pitcrew cannot deliver to receiver {entry.channel}",
        summary=(f"Notification {stuck.title!r} has not reached receiver {entry.channel} after "
                 f"{entry.attempts} attempt(s) {age}; last error: {entry.last_error or 'none'}. "
                 "It is still retried. Check the receiver's settings and the service it "
                 "posts to, then retry it."),
        correlation_id=stuck.id,
        facts={"Receiver": entry.channel, "Notification": stuck.id[:200],
               "Attempts": str(entry.attempts), "Last error": entry.last_error[:300]},
        labels={"receiver": entry.channel},
        created_at=now,
    )


# ------------------------------------------------------------------ GET /api/alerts


MAX_ALERTS_PER_GROUP = 100  # listed per group by GET /api/alerts; `alertCount` has them all


@http_errors
def list_alerts(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/alerts?limit=&continuation=&receiver=&filter=MATCHER (role Reader): the active
    groups with their alerts, each marked silenced (by which silences) or inhibited (by which
    alerts)."""
    require(headers, Role.READER)
    wanted = AlertsQuery.of(query)
    limit, after, receiver, matcher = wanted.limit, wanted.after, wanted.receiver, wanted.filter
    pipeline = get_services().alerting
    now = utcnow()
    groups = sorted((g for g in pipeline.store.groups() if g.id > after), key=lambda g: g.id)
    if receiver:
        groups = [g for g in groups if g.receiver == receiver]
    silences = pipeline.silences.active(now)
    firing = [(a.fingerprint, a.labels) for a in pipeline.store.firing_alerts()]
    out: list[dict[str, Any]] = []
    for group in groups:
        if len(out) >= limit:
            break
        alerts = [a for a in pipeline.store.alerts(group.id)
                  if matcher is None or matcher.matches(a.labels)]
        if not alerts:
            continue
        items = []
        for alert in alerts[:MAX_ALERTS_PER_GROUP]:
            view = alert.to_dict()
            muted = pipeline.mutes(alert.labels, alert.fingerprint, now, silences, firing)
            view["silencedBy"] = muted.get("silences", [])
            view["inhibitedBy"] = muted.get("inhibitedBy", [])
            items.append(view)
        # A group may hold thousands of alerts: the page stays bounded, and says it is cut.
        out.append({**group.to_dict(), "alerts": items, "alertCount": len(alerts),
                    "alertsListed": len(items)})
    more = len(out) == limit and groups and out[-1]["id"] != groups[-1].id
    token = encode_token({"after": out[-1]["id"]}) if more and out else None
    return HttpResult(200, {"groups": out, "continuation": token})


# ------------------------------------------------------------------ silences


@http_errors
def silences(method: str, headers: Mapping[str, str], query: Mapping[str, str],
             body: bytes) -> HttpResult:
    """GET /api/silences (Reader) lists; POST /api/silences (Operator) creates:
    `{"matchers": ["alertRule=cpu-high", ...], "for": "2h" | "endsAt": ISO, "startsAt"?: ISO,
    "comment": "..."}`. 201 with the silence; audited `alerting.silence.create`."""
    if method.upper() == "POST":
        principal = require(headers, Role.OPERATOR)
        request = SilenceRequest.from_body(body)
        now = utcnow()
        starts = request.starts_at or now
        ends = request.ends_at or starts + timedelta(seconds=request.duration or 0)
        created = get_services().alerting.silences.create(
            matchers=list(request.matchers), starts_at=starts, ends_at=ends,
            comment=request.comment, actor=principal.actor, now=now)
        return HttpResult(201, created.to_dict(now),
                          {"Location": links.location(f"/api/silences/{created.id}")})
    require(headers, Role.READER)
    wanted = SilencesQuery.of(query)
    now = utcnow()
    page = get_services().alerting.silences.page(limit=wanted.limit,
                                                 continuation=wanted.continuation)
    items = [s.to_dict(now) for s in page.items
             if not wanted.state or s.state(now) == wanted.state]
    return HttpResult(200, {"silences": items, "continuation": page.continuation})


@http_errors
def show_silence(headers: Mapping[str, str], silence_id: str) -> HttpResult:
    """GET /api/silences/{id} (Reader): the silence, in any state (where POST's `Location`
    points)."""
    require(headers, Role.READER)
    silence = get_services().alerting.silences.get(_silence_id(silence_id))
    if silence is None:
        raise NotFound("silence", silence_id)
    return HttpResult(200, silence.to_dict(utcnow()))


@http_errors
def expire_silence(headers: Mapping[str, str], silence_id: str) -> HttpResult:
    """DELETE /api/silences/{id} (Operator): the silence ends now (kept, audited)."""
    principal = require(headers, Role.OPERATOR)
    try:
        silence = get_services().alerting.silences.expire(_silence_id(silence_id),
                                                          actor=principal.actor)
    except LookupError:
        raise NotFound("silence", silence_id) from None
    return HttpResult(200, silence.to_dict(utcnow()))


def _silence_id(raw: str) -> str:
    """A silence id as POST /api/silences made it (a Table key): else a 400 on `id`."""
    if len(raw) != 32 or not all(c in "0123456789abcdef" for c in raw):
        raise InvalidInput("id", "is not a silence id (32 hex digits)")
    return raw


# ------------------------------------------------------------------ notifications


@http_errors
def list_notifications(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/notifications?status=pending|failed|delivered&receiver=&limit=&continuation=
    (Reader): the outbox, with attempts and the last error."""
    require(headers, Role.READER)
    wanted = NotificationsQuery.of(query)
    page = get_services().outbox.page(limit=wanted.limit, status=wanted.status,
                                      channel=wanted.receiver, continuation=wanted.continuation)
    return HttpResult(200, page.map(lambda e: e.to_dict()).body("notifications"))


@http_errors
def retry_notification(headers: Mapping[str, str], ref: str) -> HttpResult:
    """POST /api/notifications/{id}/retry (Operator): attempt a pending or failed delivery now
    (audited `notify.retry`)."""
    principal = require(headers, Role.OPERATOR)
    channel, notification_id = _ref(ref)
    services = get_services()
    entry = services.outbox.get(channel, notification_id)
    if entry is None:
        raise NotFound("notification", ref)
    result = services.outbox.retry_now(entry, services.channels.get(channel))
    # Only a delivery this retry made succeeded; one made before, or one another attempt is
    # making now, is nothing done by this retry, and nothing failed either.
    outcome: Outcome = ("succeeded" if result == "delivered" else
                        "failed" if result == "failed" else "skipped")
    reason = {"already": "delivered before; nothing sent",
              "busy": "another attempt is delivering it now"}.get(result)
    services.audit.append(AuditRecord(
        actor=principal.actor, action="notify.retry", target=f"receiver/{channel}",
        outcome=outcome,
        correlation_id=notification_id[:200],
        details={"notification": notification_id[:200], "result": result,
                 **({"reason": reason} if reason else {})},
    ))
    fresh = services.outbox.get(channel, notification_id) or entry
    return HttpResult(200, {**fresh.to_dict(), "result": result})


# ------------------------------------------------------------------ input


def _printable(name: str, most: int) -> Callable[[Any], str]:
    """A filter's text, blanks stripped: at most `most` characters, no control character."""

    def parse(raw: Any) -> str:
        value = (raw if isinstance(raw, str) else "").strip()
        if len(value) > most or any(ord(c) < 32 for c in value):
            raise InvalidInput(name, f"must be at most {most} printable characters")
        return value

    return parse


def _filter(raw: Any) -> Matcher | None:
    text = _printable("filter", 500)(raw)
    if not text:
        return None
    try:
        return Matcher.parse(text)
    except ValueError as exc:
        raise InvalidInput("filter", str(exc)) from None


class AlertsQuery(PageQuery):
    """`GET /api/alerts?receiver=&filter=MATCHER`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    receiver: Annotated[str, BeforeValidator(_printable("receiver", 100))] = ""
    filter: Annotated[Matcher | None, BeforeValidator(_filter)] = None

    @property
    def after(self) -> str:
        """The last group id of the page before (group ids sort the list)."""
        return str(self.continuation.get("after") or "") if self.continuation else ""


class SilencesQuery(PageQuery):
    """`GET /api/silences?state=pending|active|expired`."""

    state: Annotated[str | None, BeforeValidator(choice("state", SILENCE_STATES))] = None


class NotificationsQuery(PageQuery):
    """`GET /api/notifications?status=pending|failed|delivered&receiver=`."""

    status: Annotated[str | None, BeforeValidator(choice("status", NOTIFICATION_STATUSES))] = None
    receiver: Annotated[str | None, BeforeValidator(
        lambda raw: _printable("receiver", 100)(raw) or None)] = None


def _matchers(raw: Any) -> tuple[Matcher, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("matchers", "must be a non-empty array of matchers such as "
                           "\"alertRule=cpu-high\"")
    if len(raw) > MAX_MATCHERS:
        raise InvalidInput("matchers", f"at most {MAX_MATCHERS}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, str) or len(item) > 500:
            raise InvalidInput(f"matchers[{i}]", "must be a string of at most 500 characters")
        try:
            out.append(Matcher.parse(item))
        except ValueError as exc:
            raise InvalidInput(f"matchers[{i}]", str(exc)) from None
    return tuple(out)


def _comment(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("comment", "is required: say why (who reads the alert list later "
                           "needs to know)")
    if len(raw) > MAX_COMMENT:
        raise InvalidInput("comment", f"is at most {MAX_COMMENT} characters")
    return raw.strip()


def _moment(name: str, *, empty_is_none: bool) -> Callable[[Any], datetime | None]:
    """An ISO 8601 time with a zone, years 2000-2999 (None when absent)."""

    def parse(raw: Any) -> datetime | None:
        if raw is None or (empty_is_none and not raw):
            return None
        if not isinstance(raw, str):
            raise InvalidInput(name, "must be an ISO 8601 time with a zone")
        try:
            moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(name, "must be an ISO 8601 time with a zone") from None
        if moment.tzinfo is None or not 2000 <= moment.year <= 2999:
            raise InvalidInput(name, "must be an ISO 8601 time with a zone, years 2000-2999")
        return moment

    return parse


class SilenceRequest(RequestModel):
    """`POST /api/silences {"matchers": [...], "for": "2h" | "endsAt": ISO, "startsAt"?: ISO,
    "comment": "..."}`: `duration` (from `for`) when no `endsAt` is given."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    matchers: Annotated[tuple[Matcher, ...], BeforeValidator(_matchers)] = ()
    comment: Annotated[str, BeforeValidator(_comment)] = ""
    starts_at: Annotated[datetime | None, BeforeValidator(
        _moment("startsAt", empty_is_none=True))] = Field(default=None, alias="startsAt")
    ends_at: Annotated[datetime | None, BeforeValidator(
        _moment("endsAt", empty_is_none=False))] = Field(default=None, alias="endsAt")
    duration: float | None = Field(default=None, alias="for")

    @field_validator("duration", mode="before")
    @classmethod
    def _for_or_ends_at(cls, raw: Any, info: ValidationInfo) -> float | None:
        if info.data.get("ends_at") is not None:
            if raw is not None:
                raise InvalidInput("for", "give `for` or `endsAt`, not both")
            return None
        if raw is None:
            raise InvalidInput("for", "give how long the silence lasts: `for` (a duration such "
                                      "as 2h) or `endsAt` (an ISO 8601 time)")
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise InvalidInput("for", str(exc)) from None


# A reference is base64 of [channel, notification id]; an id holds an alert id (at most 4,096
# characters), so this bounds what is decoded well above any reference pitcrew issued.
MAX_REF_CHARS = 16_384


def _ref(ref: str) -> tuple[str, str]:
    if len(ref) > MAX_REF_CHARS:
        raise InvalidInput("id", "is not a notification id from GET /api/notifications")
    try:
        raw = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
        value = json.loads(raw.decode("utf-8", "surrogatepass"))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("id", "is not a notification id from GET /api/notifications") \
            from None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, str) and v for v in value)):
        raise InvalidInput("id", "is not a notification id from GET /api/notifications")
    return value[0], value[1]


__all__ = ["Pipeline", "expire_silence", "flush_group", "list_alerts", "list_notifications",
           "retry_notification", "show_silence", "silences", "sweep"]
