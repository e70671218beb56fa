"""One scan: read usage and limits per scope (and capacity metrics), add a sample, forecast,
evaluate the thresholds, notify on a change of level, and make the automatic requests.

Every quota above a threshold also writes one log line, `pitcrew.quota.threshold <quota>
<location> <provider> <subscription> level=... percent=... days=...`, which the
`<prefix>-quota-usage` log search alert (infra/modules/alerts.bicep) counts: if pitcrew's own
notifications cannot be delivered, Azure Monitor's action group still pages.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pitcrew.errors import RetryLater
from pitcrew.quota.capacity import capacity_readings
from pitcrew.quota.forecast import forecast
from pitcrew.quota.model import LEVELS, Level, QuotaState, Reading
from pitcrew.quota.notices import level_notification, send, support_text
from pitcrew.quota.policy import QuotaPolicy, Thresholds
from pitcrew.quota.ports import QuotaServices
from pitcrew.quota.requests import RequestOutcome, maybe_auto_request

log = logging.getLogger(__name__)
THRESHOLD_LINE = "pitcrew.quota.threshold"


@dataclass
class ScanReport:
    at: datetime
    scopes: int = 0
    quotas: int = 0
    failed_scopes: list[str] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    requests: list[RequestOutcome] = field(default_factory=list)
    above: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "scopes": self.scopes, "quotas": self.quotas,
                "above": self.above, "failedScopes": self.failed_scopes,
                "notifications": self.notifications,
                "requests": [r.to_dict() for r in self.requests]}


def evaluate(state: QuotaState, thresholds: Thresholds) -> tuple[Level, list[str]]:
    """The level a quota is at, and why (percent used, days to exhaustion)."""
    reasons: list[str] = []
    level: Level = "ok"
    percent, days = state.percent, state.days_to_exhaustion
    for candidate, pct, within in (("critical", thresholds.critical_percent,
                                    thresholds.critical_days),
                                   ("warning", thresholds.warning_percent,
                                    thresholds.warning_days)):
        hits = []
        if percent >= pct:
            hits.append(f"{percent:g} % used (threshold {pct:g} %)")
        if days is not None and days <= within:
            hits.append(f"exhausted within {days:.1f} days (threshold {within:g} days)")
        if hits:
            level, reasons = candidate, hits  # type: ignore[assignment]
            break
    return level, reasons


def _advance(state: QuotaState, reading: Reading, now: datetime, policy: QuotaPolicy) -> str:
    """Fold one reading into the state; return the level it was at before."""
    previous = state.level
    state.usage, state.limit, state.unit = reading.usage, reading.limit, reading.unit
    state.adjustable, state.display, state.updated = reading.adjustable, reading.display, now
    window = now - timedelta(days=policy.forecast.window_days)
    state.series = [p for p in state.series if p[0] >= window.timestamp()]
    spacing = policy.sample_spacing
    if not _repeated(state.series, now.timestamp(), reading.usage, spacing):
        state.series.append((now.timestamp(), reading.usage))
    fc = forecast(state.series, reading.limit, min_samples=policy.forecast.min_samples,
                  max_points=policy.forecast.max_points, min_spacing=spacing)
    state.slope_per_day = fc.slope_per_day if fc else None
    state.days_to_exhaustion = fc.days_to_exhaustion if fc else None
    level, reasons = evaluate(state, policy.thresholds_for(reading.quota))
    if policy.ignored(reading.quota):
        level, reasons = "ok", []
    if previous == "ok" and level != "ok":
        state.episode += 1  # a new alert episode: its notifications get new ids
    state.level, state.reasons = level, reasons
    return previous


def _repeated(series: list[tuple[float, float]], at: float, usage: float,
              spacing: float) -> bool:
    """A reading that only repeats the last sample: the same usage, less than `spacing` after
    it (a scan run again, or two at once). It adds no sample, so the forecast, and the level it
    decides, stay exactly what they were: running a scan again can never flip a level."""
    if not series:
        return False
    last_at, last_usage = series[-1]
    # Stored series keep 4 decimals (pitcrew/azure/tables/quota.py).
    return 0 <= at - last_at < spacing and abs(usage - last_usage) < 5e-5


def scan(q: QuotaServices, *, now: datetime | None = None) -> ScanReport:
    """Scan every scope the policy names, and every capacity metric."""
    now = now or datetime.now(UTC)
    policy = q.policy.quota
    report = ScanReport(at=now)
    groups: dict[str, list[Reading]] = defaultdict(list)
    for scope in policy.scopes():
        report.scopes += 1
        try:
            groups[scope].extend(q.source.readings(scope))
        except Exception as exc:  # one scope down must not hide the others
            log.error("quota scan of %s failed: %s", scope, type(exc).__name__)
            report.failed_scopes.append(scope)
    for reading in capacity_readings(q, report.failed_scopes):
        groups[reading.quota.scope].append(reading)
    changed: list[tuple[QuotaState, str]] = []
    above: list[QuotaState] = []
    for scope, readings in groups.items():
        states = q.store.states(scope)
        updated: list[QuotaState] = []
        for reading in readings:
            state = states.get(reading.quota.name) or QuotaState(reading.quota)
            previous = _advance(state, reading, now, policy)
            updated.append(state)
            if state.level != previous:
                changed.append((state, previous))
        q.store.save(scope, updated, now)
        q.store.prune(scope, now - timedelta(days=policy.retention_days))
        report.quotas += len(updated)
        for state in updated:
            if state.level != "ok":
                above.append(state)
                _threshold_line(state)
    report.above = len(above)
    for state, previous in changed:
        report.notifications.append(_notify_level(q, state, previous))
    for state in above:
        try:
            outcome = maybe_auto_request(q, state)
        except RetryLater:
            outcome = None
        if outcome is not None:
            report.requests.append(outcome)
    everything = report.scopes + len(policy.capacity)
    if everything and len(report.failed_scopes) == everything:
        raise RuntimeError(f"every quota scope failed ({len(report.failed_scopes)}); see log")
    log.info("quota scan: %d quotas in %d scopes, %d above a threshold, %d notifications, "
             "%d requests", report.quotas, report.scopes, report.above,
             len(report.notifications), len(report.requests))
    return report


def _notify_level(q: QuotaServices, state: QuotaState, previous: str) -> str:
    notification = level_notification(state, previous)
    if not state.adjustable and state.level != "ok":
        facts = dict(notification.facts)
        facts["supportRequest"] = support_text(
            state.quota, current=state.limit, usage=state.usage, wanted=None,
            why="; ".join(state.reasons) + ". The Quota API cannot adjust this quota.")
        notification = type(notification)(**{**notification.__dict__, "facts": facts})
    send(q, notification, action="notify.quota", target=state.quota.id,
         details={"level": state.level, "previous": previous, "percent": state.percent,
                  "daysToExhaustion": state.days_to_exhaustion, "episode": state.episode})
    return notification.id


def _threshold_line(state: QuotaState) -> None:
    quota = state.quota
    days = "none" if state.days_to_exhaustion is None else f"{state.days_to_exhaustion:.1f}"
    log.warning("%s %s %s %s %s level=%s percent=%s days=%s", THRESHOLD_LINE, quota.name,
                quota.location or "-", quota.provider or "-", quota.subscription or "-",
                state.level, f"{state.percent:g}", days)


def level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0
