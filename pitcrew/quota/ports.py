"""The ports of the quota area: small Protocols the engine depends on. `pitcrew/azure/quota.py`
(the Quota API), `pitcrew/azure/metrics.py` (Azure Monitor metrics) and
`pitcrew/azure/tables/quota.py` implement them; `pitcrew.bootstrap` wires them.

    QuotaSource    usages and limits per scope; submit an increase; read a request's status
    MetricSource   the latest value of a resource metric
    QuotaStore     the latest state per quota (with its forecast window) and the samples
    RequestStore   increase requests, with at most one open per quota
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pitcrew.http.paging import Page
from pitcrew.policy import Policy
from pitcrew.ports import AuditLog, Notifier, StateStore
from pitcrew.quota.model import IncreaseRequest, QuotaId, QuotaState, Reading, SubmittedRequest


class QuotaSource(Protocol):
    def readings(self, scope: str) -> list[Reading]:
        """Every quota of one scope: usage (usages.list) joined with limit (quota.list)."""
        ...

    def submit(self, quota: QuotaId, new_limit: int) -> SubmittedRequest:
        """Ask for a new limit (quota.begin_create_or_update); returns at once with the Quota
        API's request id, never waiting for the outcome."""
        ...

    def request_status(self, scope: str, azure_request: str) -> SubmittedRequest:
        """quota_request_status.get: where a request stands."""
        ...


class MetricSource(Protocol):
    def latest(self, resource: str, metric: str, aggregation: str) -> float | None:
        """The newest value of a metric over the last hour; None when there is none."""
        ...


@dataclass(frozen=True)
class StateFilter:
    subscription: str | None = None
    provider: str | None = None
    location: str | None = None
    name: str | None = None
    level: str | None = None


class QuotaStore(Protocol):
    def states(self, scope: str) -> dict[str, QuotaState]:
        """The latest state of every quota of one scope, by quota name (one query)."""
        ...

    def get(self, quota: QuotaId) -> QuotaState | None: ...

    def save(self, scope: str, states: Sequence[QuotaState], at: datetime) -> None:
        """Replace the states and add one sample per state, taken at `at` (batched)."""
        ...

    def prune(self, scope: str, before: datetime, *, limit: int = 1000) -> int:
        """Delete samples of the scope older than `before`, at most `limit`; how many went."""
        ...

    def samples(self, quota: QuotaId, since: datetime) -> Iterator[tuple[datetime, float, float]]:
        ...

    def page(self, flt: StateFilter, *, limit: int,
             continuation: Mapping[str, Any] | None = None) -> Page[QuotaState]: ...


class RequestStore(Protocol):
    def claim(self, request: IncreaseRequest) -> IncreaseRequest | None:
        """Record `request` as the quota's one open request; the open request already there
        (None when this one was recorded) if another holds the quota."""
        ...

    def open_for(self, quota: QuotaId) -> IncreaseRequest | None: ...

    def open_requests(self) -> Iterable[IncreaseRequest]: ...

    def update(self, request: IncreaseRequest) -> IncreaseRequest:
        """Save a change (ETag-conditional: Conflict if another writer changed it); a terminal
        status releases the quota for a next request."""
        ...

    def record(self, request: IncreaseRequest) -> IncreaseRequest:
        """Keep a request that ended as it was made (NotAdjustable): listed with the others,
        never the quota's open request."""
        ...

    def page(self, *, limit: int, continuation: Mapping[str, Any] | None = None,
             status: str | None = None) -> Page[IncreaseRequest]: ...


@dataclass
class QuotaServices:
    """What the quota engine works with, built by pitcrew.bootstrap."""

    policy: Policy  # the whole policy: its mode, and its quota section
    source: QuotaSource
    metrics: MetricSource
    store: QuotaStore
    requests: RequestStore
    state: StateStore
    audit: AuditLog
    notifier: Notifier  # the one call into the alert pipeline: send(notification)
