"""What quota code passes around: ids, readings, samples, the latest state, requests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pitcrew.errors import InvalidInput

Level = Literal["ok", "warning", "critical"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "critical")
Kind = Literal["quota", "metric"]

_SCOPE = re.compile(
    r"^subscriptions/(?P<subscription>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/providers/(?P<provider>[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+)"
    r"/locations/(?P<location>[a-z0-9]{1,40})$"
)
_RESOURCE = re.compile(
    r"^subscriptions/(?P<subscription>[0-9a-fA-F-]{36})/resourceGroups/[^/]{1,90}/providers/"
    r"(?P<provider>[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+)/[^?#]{1,800}$", re.IGNORECASE
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")


def quota_scope(subscription: str, provider: str, location: str) -> str:
    """The Quota API's scope for one subscription, provider and location."""
    return f"subscriptions/{subscription}/providers/{provider}/locations/{location}"


@dataclass(frozen=True, order=True)
class QuotaId:
    """A quota (scope = subscription/provider/location) or a capacity metric (scope = the
    resource id, name = the metric)."""

    scope: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.scope}/{self.name}"

    @property
    def kind(self) -> Kind:
        return "quota" if _SCOPE.match(self.scope) else "metric"

    @property
    def parts(self) -> dict[str, str]:
        match = _SCOPE.match(self.scope) or _RESOURCE.match(self.scope)
        out = {"subscription": "", "provider": "", "location": ""}
        if match:
            out.update({k: v for k, v in match.groupdict().items() if v})
        return out

    @property
    def subscription(self) -> str:
        return self.parts["subscription"]

    @property
    def provider(self) -> str:
        return self.parts["provider"]

    @property
    def location(self) -> str:
        return self.parts["location"]

    def labels(self) -> dict[str, str]:
        """What a notification carries for routing: scope, provider, location, quota name."""
        return {"scope": self.scope, "subscription": self.subscription,
                "provider": self.provider, "location": self.location, "quota": self.name}

    @classmethod
    def parse(cls, text: str, field_name: str = "quota") -> QuotaId:
        """`SCOPE/NAME`, e.g. subscriptions/<id>/providers/Microsoft.Compute/locations/eastus/
        standardDSv5Family (a leading slash is tolerated)."""
        text = (text or "").strip().strip("/")
        scope, _, name = text.rpartition("/")
        if not _SCOPE.match(scope) and not _RESOURCE.match(scope):
            raise InvalidInput(field_name, "must be SCOPE/NAME with SCOPE = subscriptions/<id>/"
                               "providers/<Provider>/locations/<location>")
        if not _NAME.match(name):
            raise InvalidInput(field_name, "the quota name must be 1-128 letters, digits, "
                               "'.', '_' or '-'")
        return cls(scope, name)


def valid_scope(scope: str) -> bool:
    return bool(_SCOPE.match(scope))


@dataclass(frozen=True)
class Reading:
    """One quota's usage and limit as a scan read them."""

    quota: QuotaId
    usage: float
    limit: float
    unit: str = "Count"
    adjustable: bool = True
    display: str = ""

    @property
    def percent(self) -> float:
        return round(self.usage * 100.0 / self.limit, 2) if self.limit > 0 else 0.0


@dataclass(frozen=True)
class Sample:
    at: datetime
    usage: float
    limit: float


@dataclass
class QuotaState:
    """The latest scan of one quota, its recent samples (the forecast window), forecast and
    alert state."""

    quota: QuotaId
    usage: float = 0.0
    limit: float = 0.0
    unit: str = "Count"
    adjustable: bool = True
    display: str = ""
    series: list[tuple[float, float]] = field(default_factory=list)  # (unix seconds, usage)
    slope_per_day: float | None = None
    days_to_exhaustion: float | None = None
    level: Level = "ok"
    reasons: list[str] = field(default_factory=list)
    episode: int = 0
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    etag: str | None = None

    @property
    def percent(self) -> float:
        return round(self.usage * 100.0 / self.limit, 2) if self.limit > 0 else 0.0

    def to_dict(self, open_request: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "id": self.quota.id, "kind": self.quota.kind, **self.quota.labels(),
            "usage": self.usage, "limit": self.limit, "unit": self.unit,
            "percent": self.percent, "adjustable": self.adjustable,
            "trendPerDay": None if self.slope_per_day is None else round(self.slope_per_day, 4),
            "daysToExhaustion": None if self.days_to_exhaustion is None
            else round(self.days_to_exhaustion, 2),
            "level": self.level, "reasons": list(self.reasons),
            "samples": len(self.series), "updated": self.updated.isoformat(),
            "openRequest": open_request,
        }


RequestStatus = Literal["Planned", "Submitting", "Accepted", "Created", "InProgress",
                        "Succeeded", "Failed", "Escalated", "Invalid", "Canceled",
                        "NotAdjustable"]
# NotAdjustable: the quota cannot be adjusted through the Quota API; recorded as it is made,
# never open (the notification says to open a support request).
TERMINAL: frozenset[str] = frozenset({"Succeeded", "Failed", "Escalated", "Invalid", "Canceled",
                                      "NotAdjustable"})
# Every status a recorded request can have: pitcrew's own (Submitting, Escalated,
# NotAdjustable) and the Quota API's RequestState. Planned is a dry run: never recorded.
RECORDED: tuple[str, ...] = ("Submitting", "Accepted", "Created", "InProgress", *sorted(TERMINAL))


@dataclass
class IncreaseRequest:
    """One increase request pitcrew made (or would make) for one quota."""

    request_id: str
    quota: QuotaId
    current_limit: float
    usage: float
    new_limit: int
    reason: str
    actor: str
    status: str = "Submitting"
    azure_request: str = ""
    message: str = ""
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    automatic: bool = False
    # Consecutive status reads that failed (reset by one that works): at MAX_READ_FAILURES the
    # request is escalated to a person.
    read_failures: int = 0
    etag: str | None = None

    @property
    def open(self) -> bool:
        return self.status not in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.request_id, "quota": self.quota.id, **self.quota.labels(),
            "currentLimit": self.current_limit, "usage": self.usage, "newLimit": self.new_limit,
            "reason": self.reason, "actor": self.actor, "status": self.status,
            "azureRequest": self.azure_request, "message": self.message,
            "automatic": self.automatic, "readFailures": self.read_failures,
            "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
        }


@dataclass(frozen=True)
class SubmittedRequest:
    azure_request: str
    status: str
    message: str = ""


class QuotaRefused(Exception):
    """The Quota API refused a request (its error code and message; never a credential)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RequestGone(QuotaRefused):
    """The Quota API no longer knows an increase request (its status read answers 404)."""
