"""The `quota:` section of pitcrew.yaml: what to scan, thresholds, forecasts, automatic
increases and capacity metrics (docs/quota.md)."""

from __future__ import annotations

import fnmatch
import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pitcrew.errors import InvalidInput
from pitcrew.quota.forecast import MIN_SPACING
from pitcrew.quota.model import QuotaId, quota_scope
from pitcrew.schema import StrictModel, matching

TIMER_MINUTES = 5  # the scan_quotas timer (functions/quota.py) fires every 5 minutes
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PROVIDER = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+$")
_LOCATION = re.compile(r"^[a-z0-9]{1,40}$")
_NAME = r"^[a-z][a-z0-9-]{0,62}$"
# What each list of names in the quota policy must look like, and what is said when one does not.
_NAMES = {
    "subscriptions": (_UUID, " is not a subscription id (a GUID)"),
    "providers": (_PROVIDER, " is not a resource provider (Microsoft.Compute)"),
    "locations": (_LOCATION, " is not a location name (eastus, swedencentral)"),
}


class Thresholds(StrictModel):
    warning_percent: float = Field(default=80.0, gt=0, le=100)
    critical_percent: float = Field(default=95.0, gt=0, le=100)
    warning_days: float = Field(default=14.0, ge=0, le=3650,
                                description="Warn when exhausted within this many days.")
    critical_days: float = Field(default=3.0, ge=0, le=3650)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.critical_percent < self.warning_percent:
            raise ValueError("critical_percent must be at least warning_percent")
        if self.critical_days > self.warning_days:
            raise ValueError("critical_days must be at most warning_days")
        return self


class ThresholdOverride(StrictModel):
    warning_percent: float | None = Field(default=None, gt=0, le=100)
    critical_percent: float | None = Field(default=None, gt=0, le=100)
    warning_days: float | None = Field(default=None, ge=0, le=3650)
    critical_days: float | None = Field(default=None, ge=0, le=3650)


class AutoIncrease(StrictModel):
    """new limit = max(usage x headroom, current + step), at most max_limit. Only for adjustable
    quotas, only when PITCREW_QUOTA_AUTO_INCREASE is true and the policy mode is `act`."""

    enabled: bool = False
    headroom: float = Field(default=1.5, gt=1, le=10)
    step: int = Field(default=10, ge=1, le=1_000_000)
    max_limit: int | None = Field(default=None, ge=1, description="Never ask for more.")
    when: Literal["warning", "critical"] = Field(
        default="warning", description="The alert level that triggers a request.")


class QuotaMatch(StrictModel):
    subscription: str | None = None
    provider: str | None = None
    location: str | None = None
    name: str = Field(default="*", min_length=1, max_length=128,
                      description="A quota name or a glob (standard*Family).")

    def matches(self, quota: QuotaId) -> bool:
        parts = quota.parts
        for key in ("subscription", "provider", "location"):
            wanted = getattr(self, key)
            if wanted is not None and wanted.lower() != parts[key].lower():
                return False
        return fnmatch.fnmatchcase(quota.name.lower(), self.name.lower())


class QuotaRule(StrictModel):
    """Per-quota overrides; the first rule whose `match` takes a quota applies."""

    match: QuotaMatch
    thresholds: ThresholdOverride = Field(default_factory=ThresholdOverride)
    auto_increase: AutoIncrease | None = None
    ignore: bool = Field(default=False, description="Neither alert on nor request for it.")


class CapacityMetric(StrictModel):
    """A resource metric with a capacity, treated like a quota (usage = the metric)."""

    name: str = Field(pattern=_NAME)
    resource: str = Field(min_length=10, max_length=1000)
    metric: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9 _./-]+$")
    aggregation: Literal["Average", "Maximum", "Minimum", "Total"] = "Maximum"
    capacity: float = Field(gt=0)
    unit: str = Field(default="", max_length=40)

    @field_validator("resource")
    @classmethod
    def _resource_id(cls, value: str) -> str:
        value = value.strip().strip("/")
        try:
            QuotaId.parse(f"{value}/x", "resource")
        except InvalidInput as exc:
            # pydantic reports only ValueError (and AssertionError) as a problem at the field's
            # location; anything else escapes validation as a traceback.
            raise ValueError("must be a resource id (subscriptions/<subscription guid>/"
                             f"resourceGroups/<group>/providers/...): {exc.problem}") from None
        if "/resourcegroups/" not in f"/{value.lower()}":
            raise ValueError("must be a resource id (subscriptions/<id>/resourceGroups/...)")
        return value

    @property
    def quota(self) -> QuotaId:
        return QuotaId(self.resource, self.metric)


class ForecastSettings(StrictModel):
    window_days: float = Field(default=14.0, gt=0, le=90)
    min_samples: int = Field(default=6, ge=2, le=1000)
    max_points: int = Field(default=64, ge=8, le=400)


class QuotaPolicy(StrictModel):
    """Scopes are subscriptions x providers x locations."""

    subscriptions: list[str] = Field(default_factory=list)
    providers: list[str] = Field(default_factory=lambda: ["Microsoft.Compute"])
    locations: list[str] = Field(default_factory=list)
    every_minutes: int = Field(default=60, ge=1, le=1440,
                               description="How often a scan runs (the timer checks every 5 min).")
    retention_days: int = Field(default=30, ge=1, le=400,
                                description="How long one sample per quota per scan is kept.")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    auto_increase: AutoIncrease = Field(default_factory=AutoIncrease)
    rules: list[QuotaRule] = Field(default_factory=list)
    capacity: list[CapacityMetric] = Field(default_factory=list)
    follow_request_hours: float = Field(
        default=72.0, gt=0, le=720,
        description="A request still open after this long is escalated to a person.")

    @field_validator("subscriptions", "providers", "locations")
    @classmethod
    def _names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        pattern, problem = _NAMES[str(info.field_name)]
        return [matching(item, pattern, problem, shown=60) for item in value]

    @field_validator("capacity")
    @classmethod
    def _unique(cls, value: list[CapacityMetric]) -> list[CapacityMetric]:
        names = [m.name for m in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"capacity names must be unique: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _rules_merge(self) -> QuotaPolicy:
        for i, rule in enumerate(self.rules):
            merged = self.thresholds.model_dump() | rule.thresholds.model_dump(exclude_none=True)
            try:
                Thresholds.model_validate(merged)
            except ValueError as exc:
                problem = str(exc).splitlines()[-1].strip().removeprefix("Value error, ")
                raise ValueError(f"rules[{i}].thresholds: {problem}") from None
        return self

    @property
    def sample_spacing(self) -> float:
        """Seconds within which two samples of a quota are one observation (a scan run again,
        two at once): at most 10 minutes and half the time between timer scans (every
        `every_minutes`, the timer firing every 5), so scheduled samples are never merged."""
        return min(MIN_SPACING, max(self.every_minutes, TIMER_MINUTES) * 60 / 2)

    def scopes(self) -> list[str]:
        return [quota_scope(s, p, loc) for s in self.subscriptions for p in self.providers
                for loc in self.locations]

    def rule_for(self, quota: QuotaId) -> QuotaRule | None:
        return next((r for r in self.rules if r.match.matches(quota)), None)

    def thresholds_for(self, quota: QuotaId) -> Thresholds:
        rule = self.rule_for(quota)
        if rule is None:
            return self.thresholds
        override = rule.thresholds.model_dump(exclude_none=True)
        merged = self.thresholds.model_dump() | override
        return Thresholds.model_validate(merged)

    def auto_increase_for(self, quota: QuotaId) -> AutoIncrease:
        rule = self.rule_for(quota)
        return rule.auto_increase if rule and rule.auto_increase else self.auto_increase

    def ignored(self, quota: QuotaId) -> bool:
        rule = self.rule_for(quota)
        return bool(rule and rule.ignore)
