"""The Quota API (Microsoft.Quota, api-version 2025-09-01) and Azure Monitor's metrics query
API, in their wire shapes, so azure-mgmt-quota's QuotaMgmtClient and azure-monitor-query's
MetricsQueryClient run unchanged against the local endpoint:

    GET  /{scope}/providers/Microsoft.Quota/usages[/{name}]
    GET  /{scope}/providers/Microsoft.Quota/quotas[/{name}]
    PUT  /{scope}/providers/Microsoft.Quota/quotas/{name}        202 as Azure answers it: no
         body, Retry-After, Location = {scope}/providers/Microsoft.Quota/operationsStatus/{id}
    GET  /{scope}/providers/Microsoft.Quota/quotaRequests[/{id}]
    GET  /[{scope}|subscriptions/{s}]/providers/Microsoft.Quota/operationsStatus/{id}
    GET  /{resource}/providers/Microsoft.Insights/metrics?metricnames=&aggregation=&timespan=

with {scope} = subscriptions/{s}/providers/{provider}/locations/{location}. Quotas and metrics
are seeded (`quotas`, `metrics` in the endpoint's config) and may grow: usage = seed +
growth_per_hour x hours since the endpoint started, never above the limit. A request stays
Accepted/InProgress for `polls` status reads, then ends as the seed's `outcome` (Succeeded: the
limit is raised; Failed; Escalated). Refused as Azure refuses: no bearer token or one issued
for another audience than ARM (401), no api-version (400), an unknown quota (404), a limit
below usage or a quota that is not adjustable (400), an unknown metric (400).

`/_local/quotas` (GET, POST) shows and changes the seeded state for tests and demos.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pitcrew_dev.azure_endpoint.credential import ARM, principal_from_token

API_PATH = "/providers/Microsoft.Quota/"
PAGE_SIZE = 500


class QuotaSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: str = Field(pattern=r"^/?subscriptions/[0-9a-fA-F-]{36}/providers/[A-Za-z.]+/"
                               r"locations/[a-z0-9]+$")
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")
    limit: int = Field(ge=0)
    usage: float = Field(default=0, ge=0)
    growth_per_hour: float = 0.0
    unit: str = "Count"
    adjustable: bool = True
    outcome: Literal["Succeeded", "Failed", "Escalated"] = "Succeeded"
    polls: int = Field(default=1, ge=0, le=100)
    max_limit: int | None = Field(default=None, ge=0,
                                  description="Requests above this are Failed.")


class MetricSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource: str
    metric: str
    value: float = 0.0
    growth_per_hour: float = 0.0
    unit: str = "Percent"


@dataclass
class _Quota:
    seed: QuotaSeed
    limit: int
    base: float
    growth: float
    outcome: str
    polls: int
    adjustable: bool


@dataclass
class _Request:
    id: str
    scope: str
    name: str
    limit: int
    created: float
    outcome: str
    polls: int
    seen: int = 0
    applied: bool = False
    error: str = ""
    history: list[str] = field(default_factory=list)


# Azure's hint, with the local endpoint's one liberty: 1 s where Azure says 30 (an SDK poller
# reads Retry-After before any other hint).
_RETRY_AFTER = {"Retry-After": "1"}


class QuotaError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"code": self.code, "message": self.message}},
                            status_code=self.status)


def _key(scope: str, name: str) -> tuple[str, str]:
    return scope.strip("/").lower(), name.lower()


class QuotaService:
    """Seeded quotas, their requests and the seeded metrics, in memory (one developer)."""

    def __init__(self, quotas: list[QuotaSeed] | None = None,
                 metrics: list[MetricSeed] | None = None) -> None:
        self._lock = threading.RLock()
        self.started = time.time()
        self.quotas: dict[tuple[str, str], _Quota] = {}
        self.metrics: dict[tuple[str, str], MetricSeed] = {}
        self.requests: dict[str, _Request] = {}
        self.submitted = 0  # PUTs accepted: how tests prove "exactly one request"
        for seed in quotas or []:
            self.add_quota(seed)
        for metric in metrics or []:
            self.metrics[(metric.resource.strip("/").lower(), metric.metric.lower())] = metric

    def add_quota(self, seed: QuotaSeed) -> None:
        with self._lock:
            self.quotas[_key(seed.scope, seed.name)] = _Quota(
                seed, seed.limit, seed.usage, seed.growth_per_hour, seed.outcome, seed.polls,
                seed.adjustable)

    # ------------------------------------------------------------------ model

    def _hours(self) -> float:
        return (time.time() - self.started) / 3600.0

    def usage(self, quota: _Quota) -> int:
        return int(min(quota.limit, quota.base + quota.growth * self._hours()))

    def _scope_quotas(self, scope: str) -> list[_Quota]:
        wanted = scope.strip("/").lower()
        return [q for (s, _), q in self.quotas.items() if s == wanted]

    def _quota(self, scope: str, name: str) -> _Quota:
        quota = self.quotas.get(_key(scope, name))
        if quota is None:
            raise QuotaError(404, "ResourceNotFound",
                             f"Quota resource '{name}' was not found in scope '{scope}'.")
        return quota

    def _advance(self, request: _Request) -> str:
        """Where a request stands after one more status read."""
        request.seen += 1
        if request.seen <= request.polls:
            return "Accepted" if request.seen == 1 and request.polls > 1 else "InProgress"
        if request.outcome == "Succeeded" and not request.applied:
            quota = self.quotas.get(_key(request.scope, request.name))
            if quota is not None:
                quota.limit = request.limit
            request.applied = True
        return request.outcome

    def _state(self, request: _Request) -> str:
        if request.seen <= request.polls:
            return "InProgress" if request.seen else "Accepted"
        return request.outcome

    # ------------------------------------------------------------------ documents

    def usage_doc(self, quota: _Quota) -> dict[str, Any]:
        scope = quota.seed.scope.strip("/")
        return {"id": f"/{scope}/providers/Microsoft.Quota/usages/{quota.seed.name}",
                "name": quota.seed.name, "type": "Microsoft.Quota/Usages",
                "properties": {"usages": {"value": self.usage(quota), "usagesType": "Individual"},
                               "unit": quota.seed.unit,
                               "name": {"value": quota.seed.name,
                                        "localizedValue": quota.seed.name},
                               "resourceType": "dedicated", "quotaPeriod": "",
                               "isQuotaApplicable": quota.adjustable}}

    def quota_doc(self, quota: _Quota) -> dict[str, Any]:
        scope = quota.seed.scope.strip("/")
        return {"id": f"/{scope}/providers/Microsoft.Quota/quotas/{quota.seed.name}",
                "name": quota.seed.name, "type": "Microsoft.Quota/Quotas",
                "properties": {"limit": {"limitObjectType": "LimitValue", "value": quota.limit,
                                         "limitType": "Independent"},
                               "unit": quota.seed.unit,
                               "name": {"value": quota.seed.name,
                                        "localizedValue": quota.seed.name},
                               "resourceType": "dedicated", "quotaPeriod": "",
                               "isQuotaApplicable": quota.adjustable}}

    def request_doc(self, request: _Request, state: str) -> dict[str, Any]:
        props: dict[str, Any] = {
            "provisioningState": state,
            "message": {"Succeeded": "Request completed", "Failed": "Request failed",
                        "Escalated": "Request escalated: a support ticket was opened",
                        }.get(state, "Request processing"),
            "requestSubmitTime": datetime.fromtimestamp(request.created, UTC).isoformat(),
            "value": [{"name": {"value": request.name}, "provisioningState": state,
                       "limit": {"limitObjectType": "LimitValue", "value": request.limit},
                       "subRequestId": request.id}],
        }
        if state == "Failed":
            props["error"] = {"code": "QuotaRequestFailed",
                              "message": request.error or "The requested limit is not "
                              "available in this region."}
        return {"id": f"/{request.scope}/providers/Microsoft.Quota/quotaRequests/{request.id}",
                "name": request.id, "type": "Microsoft.Quota/quotaRequests",
                "properties": props}

    # ------------------------------------------------------------------ HTTP

    @staticmethod
    def _check(request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise QuotaError(401, "AuthenticationFailed",
                             "Authentication failed. The 'Authorization' header is missing.")
        refused = ARM.refusal(token.strip())
        if refused is not None:
            raise QuotaError(401, ARM.code, refused)
        if not request.query_params.get("api-version"):
            raise QuotaError(400, "MissingApiVersionParameter",
                             "The api-version query parameter (?api-version=) is required for "
                             "all requests.")
        return principal_from_token(token.strip())

    async def handle(self, request: Request) -> Response:
        try:
            self._check(request)
            path = request.url.path
            head, _, tail = path.partition(API_PATH)
            scope = head.strip("/")
            parts = [p for p in tail.split("/") if p]
            kind = parts[0].lower() if parts else ""
            name = parts[1] if len(parts) > 1 else None
            with self._lock:
                return await self._route(request, scope, kind, name)
        except QuotaError as error:
            return error.response()

    async def _route(self, request: Request, scope: str, kind: str,
                     name: str | None) -> Response:
        method = request.method
        if kind == "usages" and method == "GET":
            if name:
                return JSONResponse(self.usage_doc(self._quota(scope, name)))
            return self._paged(request, [self.usage_doc(q) for q in self._scope_quotas(scope)])
        if kind == "quotas" and method == "GET":
            if name:
                return JSONResponse(self.quota_doc(self._quota(scope, name)))
            return self._paged(request, [self.quota_doc(q) for q in self._scope_quotas(scope)])
        if kind == "quotas" and method in ("PUT", "PATCH") and name:
            return self._create(request, scope, name, await request.body())
        if kind == "operationsstatus" and method == "GET" and name:
            return self._operation(request, name)
        if kind == "quotarequests" and method == "GET":
            if name:
                found = self.requests.get(name)
                if found is None or found.scope.lower() != scope.lower():
                    raise QuotaError(404, "ResourceNotFound",
                                     f"Quota request '{name}' was not found.")
                return JSONResponse(self.request_doc(found, self._advance(found)))
            docs = [self.request_doc(r, self._state(r)) for r in self.requests.values()
                    if r.scope.lower() == scope.lower()]
            return self._paged(request, docs)
        raise QuotaError(404, "InvalidResourceType",
                         f"The resource type '{kind}' is not served for {method}.")

    def _paged(self, request: Request, docs: list[dict[str, Any]]) -> Response:
        start = int(request.query_params.get("$skiptoken") or 0)
        page = docs[start:start + PAGE_SIZE]
        body: dict[str, Any] = {"value": page}
        if start + PAGE_SIZE < len(docs):
            body["nextLink"] = str(request.url.include_query_params(
                **{"$skiptoken": str(start + PAGE_SIZE)}))
        return JSONResponse(body)

    def _create(self, request: Request, scope: str, name: str, raw: bytes) -> Response:
        quota = self._quota(scope, name)
        try:
            body = json.loads(raw or b"{}")
            value = body["properties"]["limit"]["value"]
        except (ValueError, KeyError, TypeError):
            raise QuotaError(400, "InvalidRequestContent",
                             "The request must carry properties.limit.value.") from None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise QuotaError(400, "InvalidRequestContent",
                             "properties.limit.value must be a whole number.")
        if not quota.adjustable:
            raise QuotaError(400, "BadRequest",
                             f"Quota '{name}' is not adjustable through the Quota API; open a "
                             "support request.")
        if value < self.usage(quota):
            raise QuotaError(400, "BadRequest",
                             f"The requested limit {value} is below the current usage "
                             f"{self.usage(quota)}.")
        outcome = quota.outcome
        error = ""
        if quota.seed.max_limit is not None and value > quota.seed.max_limit:
            outcome, error = "Failed", (f"The requested limit {value} exceeds what the region "
                                        f"can offer ({quota.seed.max_limit}).")
        request_id = uuid.uuid4().hex
        self.requests[request_id] = _Request(request_id, scope, quota.seed.name, value,
                                             time.time(), outcome, quota.polls, error=error)
        self.submitted += 1
        base = f"{request.url.scheme}://{request.url.netloc}"
        version = request.query_params["api-version"]
        # Azure's 202 (the Quota_CreateOrUpdate examples): no body, Retry-After, and a Location
        # naming the operation's status under the scope, whose last segment is the request id.
        headers = {
            "Location": f"{base}/{scope}/providers/Microsoft.Quota/operationsStatus/"
                        f"{request_id}?api-version={version}",
            **_RETRY_AFTER,
        }
        return Response(status_code=202, headers=headers)

    async def operation_status(self, request: Request) -> Response:
        try:
            self._check(request)
            with self._lock:
                return self._operation(request, request.path_params["op"])
        except QuotaError as error:
            return error.response()

    def _operation(self, request: Request, op: str) -> Response:
        """The PUT's Location, as ARM's long-running operations answer one: 202 while the
        request is open, then 200 with the quota as raised, or the request's error."""
        found = self.requests.get(op)
        if found is None:
            raise QuotaError(404, "ResourceNotFound", "Operation was not found.")
        state = self._advance(found)
        if state in ("Accepted", "InProgress"):
            return Response(status_code=202, headers={"Location": str(request.url),
                                                      **_RETRY_AFTER})
        if state != "Succeeded":
            raise QuotaError(400, f"Quota{state}", found.error or f"The quota request {state}.")
        quota = self._quota(found.scope, found.name)
        return JSONResponse(self.quota_doc(quota))

    async def query_metrics(self, request: Request) -> Response:
        try:
            self._check(request)
        except QuotaError as error:
            return error.response()
        resource = request.url.path.split("/providers/Microsoft.Insights/metrics")[0]
        resource = resource.strip("/")
        names = [n for n in (request.query_params.get("metricnames") or "").split(",") if n]
        aggregations = [a.strip().lower() for a in
                        (request.query_params.get("aggregation") or "average").split(",")]
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        values = []
        with self._lock:
            known = {m for (r, m) in self.metrics if r == resource.lower()}
            if not known:
                return QuotaError(404, "ResourceNotFound",
                                  f"The resource '{resource}' was not found.").response()
            for name in names:
                seed = self.metrics.get((resource.lower(), name.lower()))
                if seed is None:
                    return QuotaError(
                        400, "BadRequest",
                        f"Failed to find metric configuration for metric: '{name}'. Valid "
                        f"metrics: {', '.join(sorted(known))}").response()
                points = []
                for minutes_ago in range(4, -1, -1):
                    at = now - timedelta(minutes=minutes_ago)
                    hours = (at.timestamp() - self.started) / 3600.0
                    value = max(0.0, seed.value + seed.growth_per_hour * max(hours, 0.0))
                    points.append({"timeStamp": at.isoformat().replace("+00:00", "Z"),
                                   **{a: value for a in aggregations}})
                values.append({
                    "id": f"/{resource}/providers/Microsoft.Insights/metrics/{seed.metric}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": seed.metric, "localizedValue": seed.metric},
                    "displayDescription": "", "unit": seed.unit, "errorCode": "Success",
                    "timeseries": [{"metadatavalues": [], "data": points}],
                })
        span = f"{(now - timedelta(hours=1)).isoformat()}/{now.isoformat()}"
        return JSONResponse({"cost": 0, "timespan": span, "interval": "PT1M", "value": values,
                             "namespace": "", "resourceregion": "local"})

    async def inspect(self, request: Request) -> Response:
        """GET: quotas (current usage) and requests; POST: change or add one quota."""
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                with self._lock:
                    found = self.quotas.get(_key(str(body["scope"]), str(body["name"])))
                    if found is None:
                        self.add_quota(QuotaSeed.model_validate(body))
                    else:
                        for key in ("limit", "polls"):
                            if key in body:
                                setattr(found, key, int(body[key]))
                        if "usage" in body:
                            found.base = float(body["usage"]) - found.growth * self._hours()
                        if "growth_per_hour" in body:
                            current = found.base + found.growth * self._hours()
                            found.growth = float(body["growth_per_hour"])
                            found.base = current - found.growth * self._hours()
                        if "outcome" in body:
                            found.outcome = str(body["outcome"])
                        if "adjustable" in body:
                            found.adjustable = bool(body["adjustable"])
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"error": f"bad quota request: {type(exc).__name__}"},
                                    status_code=400)
            return JSONResponse({"ok": True})
        with self._lock:
            return JSONResponse({
                "submitted": self.submitted,
                "quotas": [{"scope": q.seed.scope.strip("/"), "name": q.seed.name,
                            "usage": self.usage(q), "limit": q.limit}
                           for q in self.quotas.values()],
                "requests": [{"id": r.id, "scope": r.scope, "name": r.name, "limit": r.limit,
                              "state": self._state(r), "reads": r.seen}
                             for r in self.requests.values()],
            })
