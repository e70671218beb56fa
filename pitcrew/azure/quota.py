"""QuotaSource (pitcrew.quota.ports) over azure-mgmt-quota's QuotaMgmtClient: usages.list and
quota.list per scope, quota.begin_create_or_update to ask for a limit (returning at once with
the request id from the Location header; the status is followed with quota_request_status.get
by the follow timer, not by blocking here). In Azure with the managed identity; against the
local Azure endpoint when PITCREW_LOCAL_AZURE_URL is set (pitcrew.runtime.Runtime.arm_client)."""

from __future__ import annotations

from typing import Any

from pitcrew.quota.model import QuotaId, QuotaRefused, Reading, RequestGone, SubmittedRequest
from pitcrew.runtime import Runtime


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = getattr(obj, name, None)
    return obj


class AzureQuotaSource:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _client(self, scope: str) -> Any:
        subscription = scope.strip("/").split("/")[1]
        return self._runtime.arm_client("azure.mgmt.quota", "QuotaMgmtClient", subscription)

    def readings(self, scope: str) -> list[Reading]:
        client = self._client(scope)
        limits: dict[str, tuple[float, bool, str]] = {}
        for item in client.quota.list(scope=scope):
            props = item.properties
            name = _get(props, "name", "value") or item.name
            value = _get(props, "limit", "value")
            if name and value is not None:
                limits[name.lower()] = (float(value), bool(_get(props, "is_quota_applicable")),
                                        _get(props, "name", "localized_value") or name)
        out: list[Reading] = []
        for item in client.usages.list(scope=scope):
            props = item.properties
            name = _get(props, "name", "value") or item.name
            usage = _get(props, "usages", "value")
            if not name or usage is None or name.lower() not in limits:
                continue
            limit, adjustable, display = limits[name.lower()]
            out.append(Reading(QuotaId(scope, name), float(usage), limit,
                               unit=_get(props, "unit") or "Count",
                               adjustable=adjustable and bool(
                                   _get(props, "is_quota_applicable") is not False),
                               display=display))
        return out

    def submit(self, quota: QuotaId, new_limit: int) -> SubmittedRequest:
        from azure.core.exceptions import HttpResponseError  # SDK on first use (cold start)

        client = self._client(quota.scope)
        answer: dict[str, Any] = {}

        def capture(pipeline_response: Any) -> None:
            response = pipeline_response.http_response
            answer["status"] = response.status_code
            answer["location"] = response.headers.get("Location", "")

        body = {"properties": {"limit": {"limitObjectType": "LimitValue", "value": new_limit},
                               "name": {"value": quota.name}}}
        try:
            # The PUT is sent here; the poller is never asked for its result: Azure's 202 has
            # no body to deserialize, and the request is followed by id (follow), not polled.
            client.quota.begin_create_or_update(
                resource_name=quota.name, scope=quota.scope, create_quota_request=body,
                polling=False, raw_response_hook=capture)
        except HttpResponseError as exc:
            error = getattr(exc, "error", None)
            raise QuotaRefused(getattr(error, "code", None) or str(exc.status_code),
                               (getattr(error, "message", None) or exc.reason or "")[:1000]
                               ) from None
        request_id = request_id_of(str(answer.get("location") or ""))
        return SubmittedRequest(request_id, "Accepted" if request_id else "Succeeded")

    def request_status(self, scope: str, azure_request: str) -> SubmittedRequest:
        from azure.core.exceptions import ResourceNotFoundError  # lazy: cold start

        try:
            details = self._client(scope).quota_request_status.get(id=azure_request, scope=scope)
        except ResourceNotFoundError as exc:
            error = getattr(exc, "error", None)
            raise RequestGone(getattr(error, "code", None) or "NotFound",
                              (getattr(error, "message", None) or exc.reason or "")[:1000]
                              ) from None
        props = details.properties
        raw = _get(props, "provisioning_state") or "InProgress"
        state = str(getattr(raw, "value", raw))  # an enum member or a string the enum lacks
        message = _get(props, "error", "message") or _get(props, "message") or ""
        return SubmittedRequest(azure_request, state, str(message)[:1000])


def request_id_of(location: str) -> str:
    """The quota request's id in the Location of the PUT's answer: its last path segment, as
    Azure names it both in a 202 (`.../Microsoft.Quota/operationsStatus/{id}`) and in a 200
    (`.../Microsoft.Quota/quotaRequests/{id}`); empty when there is no Location."""
    path = location.split("?", 1)[0].rstrip("/")
    if "/providers/microsoft.quota/" not in path.lower():
        return ""
    return path.rsplit("/", 1)[-1]
