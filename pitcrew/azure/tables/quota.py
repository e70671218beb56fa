"""QuotaStore and RequestStore (pitcrew.quota.ports) over Table storage.

States: `<prefix>quotastates`, PartitionKey = scope, RowKey = quota name: the latest scan of a
quota with its forecast window (at most MAX_SERIES samples, as compact JSON), forecast and alert
state. A scan reads a scope's states in one query and writes them back in transactions of 100.
Samples: `<prefix>quotasamples`, PartitionKey = scope, RowKey = `<UTC time>|<name>`: one per
quota per scan, written in the same batches, pruned past the policy's retention.
Requests: `<prefix>quotarequests`; PartitionKey "open", RowKey = quota id holds the quota's one
open request (inserted only if absent: the claim), PartitionKey "all", RowKey = newest-first
time + request id holds every request's latest record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pitcrew.azure.tables import transactions
from pitcrew.azure.tables.keys import printable, row_etag, table_key
from pitcrew.azure.tables.paging import query_page, where
from pitcrew.errors import Conflict
from pitcrew.http.paging import Page
from pitcrew.quota.model import IncreaseRequest, QuotaId, QuotaState
from pitcrew.quota.ports import StateFilter

if TYPE_CHECKING:
    from azure.data.tables import TableClient

MAX_SERIES = 400
_BATCH = 100
_STAMP = "%Y%m%dT%H%M%S"


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _state_entity(state: QuotaState) -> dict[str, Any]:
    quota = state.quota
    series = state.series[-MAX_SERIES:]
    entity: dict[str, Any] = {
        "PartitionKey": table_key(quota.scope), "RowKey": table_key(quota.name),
        "Scope": quota.scope, "Name": quota.name, "Kind": quota.kind,
        "Subscription": quota.subscription.lower(), "Provider": quota.provider.lower(),
        "Location": quota.location.lower(), "Usage": float(state.usage),
        "QuotaLimit": float(state.limit), "Unit": state.unit[:40],
        "Adjustable": state.adjustable, "Display": printable(state.display)[:200],
        "Series": json.dumps([[int(t), round(u, 4)] for t, u in series], separators=(",", ":")),
        "Level": state.level, "Reasons": json.dumps(state.reasons)[:4000],
        "Episode": state.episode, "Updated": state.updated,
        "Percent": float(state.percent),
    }
    if state.slope_per_day is not None:
        entity["SlopePerDay"] = float(state.slope_per_day)
    if state.days_to_exhaustion is not None:
        entity["DaysToExhaustion"] = float(state.days_to_exhaustion)
    return entity


def _state(row: Mapping[str, Any]) -> QuotaState:
    updated = row.get("Updated")
    return QuotaState(
        quota=QuotaId(row["Scope"], row["Name"]),
        usage=float(row.get("Usage", 0.0)), limit=float(row.get("QuotaLimit", 0.0)),
        unit=row.get("Unit", "Count"), adjustable=bool(row.get("Adjustable", True)),
        display=row.get("Display", ""),
        series=[(float(t), float(u)) for t, u in json.loads(row.get("Series") or "[]")],
        slope_per_day=row.get("SlopePerDay"), days_to_exhaustion=row.get("DaysToExhaustion"),
        level=row.get("Level", "ok"), reasons=list(json.loads(row.get("Reasons") or "[]")),
        episode=int(row.get("Episode", 0)),
        updated=updated if isinstance(updated, datetime) else datetime.now(UTC),
        etag=row_etag(row),
    )


class TableQuotaStore:
    """QuotaStore (pitcrew.quota.ports) over two tables."""

    def __init__(self, states: TableClient, samples: TableClient) -> None:
        self._states = states
        self._samples = samples

    def states(self, scope: str) -> dict[str, QuotaState]:
        rows = self._states.query_entities("PartitionKey eq @pk",
                                           parameters={"pk": table_key(scope)})
        return {row["Name"]: _state(row) for row in rows}

    def get(self, quota: QuotaId) -> QuotaState | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        try:
            return _state(self._states.get_entity(table_key(quota.scope), table_key(quota.name)))
        except ResourceNotFoundError:
            return None

    def save(self, scope: str, states: Sequence[QuotaState], at: datetime) -> None:
        from azure.data.tables import UpdateMode  # SDK on first use (cold start)

        stamp = at.astimezone(UTC).strftime(_STAMP)
        entities = [_state_entity(s) for s in states]
        partition = table_key(scope)
        samples = [{"PartitionKey": partition, "RowKey": f"{stamp}|{table_key(s.quota.name)}",
                    "Name": s.quota.name, "Usage": float(s.usage), "QuotaLimit": float(s.limit),
                    "At": at} for s in states]
        for table, rows in ((self._states, entities), (self._samples, samples)):
            for chunk in _chunks(rows, _BATCH):
                transactions.submit(table, [("upsert", e, {"mode": UpdateMode.REPLACE})
                                          for e in chunk])

    def prune(self, scope: str, before: datetime, *, limit: int = 1000) -> int:
        cutoff = before.astimezone(UTC).strftime(_STAMP)
        page = query_page(self._samples, "PartitionKey eq @pk and RowKey lt @cutoff",
                          parameters={"pk": table_key(scope), "cutoff": cutoff}, limit=limit,
                          select=["PartitionKey", "RowKey"])
        for chunk in _chunks(page.items, _BATCH):
            transactions.submit(self._samples, [("delete", e) for e in chunk])
        return len(page.items)

    def samples(self, quota: QuotaId, since: datetime) -> Iterator[tuple[datetime, float, float]]:
        rows = self._samples.query_entities(
            "PartitionKey eq @pk and RowKey ge @since and Name eq @name",
            parameters={"pk": table_key(quota.scope), "name": quota.name,
                        "since": since.astimezone(UTC).strftime(_STAMP)})
        for row in rows:
            yield row["At"], float(row["Usage"]), float(row["QuotaLimit"])

    def page(self, flt: StateFilter, *, limit: int,
             continuation: Mapping[str, Any] | None = None) -> Page[QuotaState]:
        parameters: dict[str, Any] = {}
        query = where("PartitionKey ne ''", parameters,
                      ("Subscription", "eq", "sub", flt.subscription and flt.subscription.lower()),
                      ("Provider", "eq", "prov", flt.provider and flt.provider.lower()),
                      ("Location", "eq", "loc", flt.location and flt.location.lower()),
                      ("Name", "eq", "name", flt.name),
                      ("Level", "eq", "level", flt.level))
        page = query_page(self._states, query, parameters=parameters, limit=limit,
                          continuation=continuation)
        return page.map(_state)


# ---------------------------------------------------------------------------------- requests

OPEN = "open"
ALL = "all"
_FAR = 10**13  # milliseconds: newest-first keys until the year 2286


def _all_key(request: IncreaseRequest) -> str:
    millis = int(request.created.timestamp() * 1000)
    return f"{_FAR - millis:013d}-{request.request_id}"


def _request_entity(request: IncreaseRequest, partition: str) -> dict[str, Any]:
    return {
        "PartitionKey": partition,
        "RowKey": table_key(request.quota.id) if partition == OPEN else _all_key(request),
        "RequestId": request.request_id, "Scope": request.quota.scope, "Name": request.quota.name,
        "CurrentLimit": float(request.current_limit), "Usage": float(request.usage),
        "NewLimit": int(request.new_limit), "Reason": printable(request.reason)[:2000],
        "Actor": printable(request.actor)[:300], "Status": request.status,
        "AzureRequest": request.azure_request[:1000],
        "Message": printable(request.message)[:4000], "Created": request.created,
        "UpdatedAt": request.updated, "Automatic": request.automatic,
        "ReadFailures": int(request.read_failures),
    }


def _request(row: Mapping[str, Any]) -> IncreaseRequest:
    return IncreaseRequest(
        request_id=row["RequestId"], quota=QuotaId(row["Scope"], row["Name"]),
        current_limit=float(row["CurrentLimit"]), usage=float(row["Usage"]),
        new_limit=int(row["NewLimit"]), reason=row.get("Reason", ""), actor=row.get("Actor", ""),
        status=row["Status"], azure_request=row.get("AzureRequest", ""),
        message=row.get("Message", ""), created=row["Created"], updated=row["UpdatedAt"],
        automatic=bool(row.get("Automatic", False)),
        read_failures=int(row.get("ReadFailures", 0)), etag=row_etag(row),
    )


class TableRequestStore:
    """RequestStore (pitcrew.quota.ports): the open row is the claim."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def claim(self, request: IncreaseRequest) -> IncreaseRequest | None:
        from azure.core.exceptions import ResourceExistsError  # SDK on first use (cold start)

        try:
            meta = self._table.create_entity(_request_entity(request, OPEN))
        except ResourceExistsError:
            existing = self.open_for(request.quota)
            if existing is None:  # closed in between: try once more
                return self.claim(request)
            return existing
        request.etag = meta["etag"]
        self._table.upsert_entity(_request_entity(request, ALL))
        return None

    def open_for(self, quota: QuotaId) -> IncreaseRequest | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        try:
            return _request(self._table.get_entity(OPEN, table_key(quota.id)))
        except ResourceNotFoundError:
            return None

    def open_requests(self) -> Iterable[IncreaseRequest]:
        for row in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": OPEN}):
            yield _request(row)

    def update(self, request: IncreaseRequest) -> IncreaseRequest:
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        request.updated = datetime.now(UTC)
        try:
            if request.open:
                meta = self._table.update_entity(
                    _request_entity(request, OPEN), mode=UpdateMode.REPLACE, etag=request.etag,
                    match_condition=MatchConditions.IfNotModified)
                request.etag = meta["etag"]
            else:
                self._table.delete_entity(OPEN, table_key(request.quota.id), etag=request.etag,
                                          match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            raise Conflict(f"quota request {request.request_id} changed under us") from None
        self._table.upsert_entity(_request_entity(request, ALL), mode=UpdateMode.REPLACE)
        return request

    def record(self, request: IncreaseRequest) -> IncreaseRequest:
        from azure.data.tables import UpdateMode  # SDK on first use (cold start)

        if request.open:
            raise ValueError(f"an open request ({request.status}) is claimed, not recorded")
        request.updated = datetime.now(UTC)
        self._table.upsert_entity(_request_entity(request, ALL), mode=UpdateMode.REPLACE)
        return request

    def page(self, *, limit: int, continuation: Mapping[str, Any] | None = None,
             status: str | None = None) -> Page[IncreaseRequest]:
        parameters: dict[str, Any] = {"pk": ALL}
        query = where("PartitionKey eq @pk", parameters, ("Status", "eq", "status", status))
        return query_page(self._table, query, parameters=parameters, limit=limit,
                          continuation=continuation).map(_request)
