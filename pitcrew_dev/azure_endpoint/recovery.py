"""The calls pitcrew's recovery-readiness checks make, in Azure's shapes and as strict as Azure:

    GET    {cosmos account}                         backupPolicy, provisioningState
    PUT    {cosmos account}                         createMode Restore (LRO: 200 +
                                                    Azure-AsyncOperation, InProgress once)
    DELETE {cosmos account}                         LRO: 202, gone after the first poll
    GET    /subscriptions/{s}/providers/Microsoft.DocumentDB/locations/{l}/
           restorableDatabaseAccounts               continuous-backup accounts only
    GET    {cosmos account}/sqlDatabases[/{db}/containers]
    GET    {cosmos account}/providers/Microsoft.Insights/metrics   DocumentCount per container
    GET    {storage account}/blobServices/default   soft delete, versioning, restore policy
    POST   /loganalytics/v1/workspaces/{id}/query   the repository's backup-jobs query only,
                                                    answered from seeded AddonAzureBackupJobs rows
    /acr/{login server}/...                         the registry data plane with ACR's token
                                                    exchange (oauth2/exchange, oauth2/token);
                                                    the exchange takes an Entra token for ACR
                                                    or ARM only

Bearer tokens must be for the service's audience (credential.py: ARM, LOG_ANALYTICS,
CONTAINER_REGISTRY), else 401 as Azure answers.

The Log Analytics route cannot run KQL: it recognises pitcrew's query by its text
(pitcrew/housekeeping/queries/backup_jobs.kql) and evaluates its Python equivalent (latest job
per item, failed count); any other query is Azure's 400 BadArgumentError. Seeds come from the
endpoint config's `recovery` key (see RecoverySeed); state lives in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pitcrew_dev.azure_endpoint.arm import bearer_token
from pitcrew_dev.azure_endpoint.credential import ARM, CONTAINER_REGISTRY, LOG_ANALYTICS

Handler = Callable[[Request], Awaitable[Response]]


def _arm_authenticated(request: Request) -> bool:
    """A bearer token for ARM and an api-version: what this module's ARM routes need before
    they answer; without them the fallback (ArmApp, the quota module) answers 401 / 400."""
    token = bearer_token(request)
    return token is not None and ARM.refusal(token) is None \
        and bool(request.query_params.get("api-version"))
_COSMOS = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/"
                     r"microsoft\.documentdb/databaseaccounts/([^/]+)(/.*)?$", re.I)
_STORAGE = re.compile(r"^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/"
                      r"microsoft\.storage/storageaccounts/[^/]+)/blobservices/default$", re.I)
_RESTORABLE = re.compile(r"^/subscriptions/([^/]+)/providers/microsoft\.documentdb/locations/"
                         r"([^/]+)/restorabledatabaseaccounts$", re.I)
_ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,42}[a-z0-9]$")


# --- seeds -----------------------------------------------------------------------------------

class CosmosSeed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str
    location: str = "eastus"
    backup: dict[str, Any] = Field(default_factory=lambda: {"type": "Continuous",
                                                             "tier": "Continuous7Days"})
    databases: dict[str, dict[str, int]] = Field(default_factory=dict)
    restorable_minutes: int = Field(default=7 * 24 * 60, alias="restorableMinutes")
    # A restored copy of this account holds this fraction of the items (1.0: all of them).
    restored_fraction: float = Field(default=1.0, alias="restoredFraction")


class StorageSeed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str
    soft_delete_days: int | None = Field(default=None, alias="softDeleteDays")
    container_soft_delete_days: int | None = Field(default=None, alias="containerSoftDeleteDays")
    versioning: bool = False
    restore_days: int | None = Field(default=None, alias="restoreDays")


class ImageSeed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    tags: list[str] = Field(default_factory=list)
    size: int = 1000
    age_days: float = Field(default=0, alias="ageDays")
    locked: bool = False
    digest: str | None = None


class RecoverySeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cosmos: list[CosmosSeed] = Field(default_factory=list)
    storage: list[StorageSeed] = Field(default_factory=list)
    # workspace id -> AddonAzureBackupJobs rows; JobStartDateTime may be "-26h" (relative)
    workspaces: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    # login server -> repository -> images
    registries: dict[str, dict[str, list[ImageSeed]]] = Field(default_factory=dict)


# --- state -----------------------------------------------------------------------------------

@dataclass
class Account:
    id: str
    location: str
    backup: dict[str, Any]
    databases: dict[str, dict[str, int]]
    instance: str
    created: datetime
    restorable_from: datetime
    state: str = "Succeeded"
    tags: dict[str, str] = field(default_factory=dict)
    restored_fraction: float = 1.0


@dataclass
class Operation:
    account: str
    kind: str  # create | delete
    polls_left: int


@dataclass
class Image:
    digest: str
    tags: list[str]
    size: int
    updated: datetime
    locked: bool


def _key(resource_id: str) -> str:
    return "/" + resource_id.strip("/").lower()


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _when(value: Any, now: datetime) -> datetime:
    text = str(value)
    match = re.fullmatch(r"-(\d+(?:\.\d+)?)([hdm])", text)
    if match:
        unit = {"h": "hours", "d": "days", "m": "minutes"}[match.group(2)]
        return now - timedelta(**{unit: float(match.group(1))})
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _duration(text: str) -> timedelta | None:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", text)
    if not match or text in ("P", "PT"):
        return None
    d, h, m, s = match.groups()
    return timedelta(days=int(d or 0), hours=int(h or 0), minutes=int(m or 0),
                     seconds=float(s or 0))


def _normal(query: str) -> str:
    lines = [line.split("//", 1)[0].strip() for line in query.splitlines()]
    return " ".join(" ".join(line for line in lines if line).split())


class RecoveryApp:
    def __init__(self, seed: RecoverySeed | dict[str, Any] | None = None) -> None:
        seed = seed if isinstance(seed, RecoverySeed) else RecoverySeed.model_validate(seed or {})
        now = datetime.now(UTC)
        self._lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.operations: dict[str, Operation] = {}
        self.storage: dict[str, StorageSeed] = {_key(s.id): s for s in seed.storage}
        self.workspaces = {k.lower(): v for k, v in seed.workspaces.items()}
        self.images: dict[str, dict[str, list[Image]]] = {}
        self.tokens: dict[str, set[str]] = {}
        self.deleted_images: list[str] = []
        for c in seed.cosmos:
            self.accounts[_key(c.id)] = Account(
                "/" + c.id.strip("/"), c.location, dict(c.backup),
                {db: dict(cs) for db, cs in c.databases.items()},
                str(uuid.uuid5(uuid.NAMESPACE_URL, c.id.lower())), now - timedelta(days=400),
                now - timedelta(minutes=c.restorable_minutes),
                restored_fraction=c.restored_fraction)
        for server, repos in seed.registries.items():
            self.images[server.lower()] = {
                repo: [Image(i.digest or "sha256:" + hashlib.sha256(
                    f"{server}/{repo}/{n}/{i.tags}".encode()).hexdigest(),
                    list(i.tags), i.size, now - timedelta(days=i.age_days), i.locked)
                    for n, i in enumerate(imgs)]
                for repo, imgs in repos.items()}
        self.query = _normal((resources.files("pitcrew.housekeeping") / "queries" /
                              "backup_jobs.kql").read_text("utf-8"))

    # --- ARM ---------------------------------------------------------------------------------

    def wrap(self, fallback: Handler) -> Handler:
        """ARM requests this module serves; everything else goes to `fallback` (ArmApp)."""

        async def handle(request: Request) -> Response:
            if not _arm_authenticated(request):
                return await fallback(request)  # ArmApp answers 401 / 400 as Azure does
            answer = await self._arm(request)
            return answer if answer is not None else await fallback(request)

        return handle

    def metrics_or(self, fallback: Handler) -> Handler:
        """Azure Monitor metrics: a Cosmos DB account seeded here answers DocumentCount; any
        other resource goes to `fallback` (the quota module's metrics)."""

        async def handle(request: Request) -> Response:
            path = request.url.path.rstrip("/")
            account = _key(path.split("/providers/Microsoft.Insights/metrics", 1)[0]
                           if "/providers/Microsoft.Insights/metrics" in path
                           else path.lower().split("/providers/microsoft.insights/metrics")[0])
            with self._lock:
                found = self.accounts.get(account)
            if found is None or not _arm_authenticated(request):
                return await fallback(request)
            if found.state != "Succeeded":
                return _error(404, "ResourceNotFound", f"The resource '{found.id}' was not "
                              "found.")
            return self._metrics(found, request)

        return handle

    async def _arm(self, request: Request) -> Response | None:
        path = request.url.path.rstrip("/")
        method = request.method
        lowered = path.lower()
        if "/operationsstatus/" in lowered or "/operationresults/" in lowered:
            op = lowered.rsplit("/", 1)[-1]
            with self._lock:
                if op not in self.operations:
                    return None
                return self._operation(op, "operationresults" in lowered)
        if method == "GET" and (m := _RESTORABLE.match(path)):
            return self._restorable(m.group(1), m.group(2))
        if method == "GET" and (m := _STORAGE.match(path)):
            return self._blob_service(m.group(1))
        m = _COSMOS.match(path)
        if not m:
            return None
        key = _key(path[: len(path) - len(m.group(4) or "")])
        rest = (m.group(4) or "").lower()
        with self._lock:
            account = self.accounts.get(key)
            if method == "PUT" and not rest:
                return await self._put(request, key, m.group(3))
            if account is None:
                if method == "DELETE" and not rest:
                    return Response(status_code=204)
                return None
            if method == "DELETE" and not rest:
                return self._delete(request, account)
            if method != "GET":
                return None
            if not rest:
                return JSONResponse(self._document(request, account))
            if account.state != "Succeeded":
                return _error(409, "Conflict", "The account is not ready yet.")
            return self._child(account, rest, request)

    def _document(self, request: Request, a: Account) -> dict[str, Any]:
        base = f"{request.url.scheme}://{request.url.netloc}"
        name = a.id.rsplit("/", 1)[-1]
        policy: dict[str, Any] = {"type": a.backup.get("type", "Periodic")}
        if policy["type"] == "Continuous":
            policy["continuousModeProperties"] = {"tier": a.backup.get("tier",
                                                                       "Continuous30Days")}
        else:
            policy["periodicModeProperties"] = {
                "backupIntervalInMinutes": a.backup.get("intervalMinutes", 240),
                "backupRetentionIntervalInHours": a.backup.get("retentionHours", 8),
                "backupStorageRedundancy": "Geo"}
        return {"id": a.id, "name": name, "type": "Microsoft.DocumentDB/databaseAccounts",
                "location": a.location, "kind": "GlobalDocumentDB", "tags": a.tags,
                "properties": {"provisioningState": a.state, "documentEndpoint":
                               f"{base}/cosmos/{name}/", "databaseAccountOfferType": "Standard",
                               "instanceId": a.instance, "backupPolicy": policy,
                               "locations": [{"locationName": a.location,
                                              "failoverPriority": 0}]}}

    def _restorable(self, subscription: str, location: str) -> Response:
        items = []
        for a in self.accounts.values():
            if a.id.split("/")[2].lower() != subscription.lower() \
                    or a.location.replace(" ", "").lower() != location.lower() \
                    or a.backup.get("type") != "Continuous" or a.state != "Succeeded":
                continue
            items.append({
                "id": f"/subscriptions/{subscription}/providers/Microsoft.DocumentDB/locations/"
                      f"{location}/restorableDatabaseAccounts/{a.instance}",
                "name": a.instance, "location": a.location,
                "type": "Microsoft.DocumentDB/locations/restorableDatabaseAccounts",
                "properties": {"accountName": a.id.rsplit("/", 1)[-1],
                               "creationTime": _iso(a.created),
                               "oldestRestorableTime": _iso(a.restorable_from),
                               "apiType": "Sql",
                               "restorableLocations": [{"locationName": a.location}]}})
        return JSONResponse({"value": items})

    def _child(self, a: Account, rest: str, request: Request) -> Response | None:
        parts = rest.strip("/").split("/")
        if parts == ["sqldatabases"]:
            return JSONResponse({"value": [
                {"id": f"{a.id}/sqlDatabases/{db}", "name": db,
                 "type": "Microsoft.DocumentDB/databaseAccounts/sqlDatabases",
                 "properties": {"resource": {"id": db}}} for db in a.databases]})
        if len(parts) == 3 and parts[0] == "sqldatabases" and parts[2] == "containers":
            db = next((d for d in a.databases if d.lower() == parts[1]), None)
            if db is None:
                return _error(404, "NotFound", f"Database {parts[1]} was not found.")
            return JSONResponse({"value": [
                {"id": f"{a.id}/sqlDatabases/{db}/containers/{c}", "name": c,
                 "type": "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers",
                 "properties": {"resource": {"id": c}}} for c in a.databases[db]]})
        if parts == ["providers", "microsoft.insights", "metrics"]:
            return self._metrics(a, request)
        return None

    def _metrics(self, a: Account, request: Request) -> Response:
        names = request.query_params.get("metricnames", "")
        if names.lower() != "documentcount":
            return _error(400, "BadRequest", f"Metric {names!r} is not served locally "
                                             "(DocumentCount only).")
        timespan = request.query_params.get("timespan", "")
        stamp = timespan.split("/")[-1] if "/" in timespan else _iso(datetime.now(UTC))
        series = [{"metadatavalues": [
                      {"name": {"value": "databasename", "localizedValue": "databasename"},
                       "value": db},
                      {"name": {"value": "collectionname", "localizedValue": "collectionname"},
                       "value": c}],
                   "data": [{"timeStamp": stamp, "average": float(n)}]}
                  for db, cs in a.databases.items() for c, n in cs.items()]
        return JSONResponse({
            "cost": 0, "timespan": timespan or "PT1H", "interval": "PT5M",
            "namespace": "Microsoft.DocumentDB/databaseAccounts", "resourceregion": a.location,
            "value": [{"id": f"{a.id}/providers/Microsoft.Insights/metrics/DocumentCount",
                       "type": "Microsoft.Insights/metrics",
                       "name": {"value": "DocumentCount", "localizedValue": "Document Count"},
                       "unit": "Count", "timeseries": series}]})

    async def _put(self, request: Request, key: str, name: str) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "InvalidRequestContent", "The request body is not JSON.")
        if not isinstance(body, dict):
            return _error(400, "InvalidRequestContent", "The request body must be an object.")
        if key in self.accounts:
            return _error(409, "Conflict", f"Database account {name} already exists; "
                                           "createMode Restore needs a new account.")
        if not _ACCOUNT_NAME.match(name):
            return _error(400, "InvalidResourceName", f"Account name {name!r} must be 3-44 "
                          "lower-case letters, digits or hyphens.")
        props: dict[str, Any] = body["properties"] if isinstance(body.get("properties"),
                                                                  dict) else {}
        location = body.get("location")
        if not isinstance(location, str) or not props.get("locations"):
            return _error(400, "BadRequest", "location and properties.locations are required.")
        if props.get("databaseAccountOfferType") != "Standard":
            return _error(400, "BadRequest", "databaseAccountOfferType must be 'Standard'.")
        if props.get("createMode") != "Restore":
            return _error(400, "BadRequest", "The local endpoint creates accounts by restore "
                                             "only (createMode Restore).")
        if (props.get("backupPolicy") or {}).get("type") != "Continuous":
            return _error(400, "BadRequest", "A restored account needs backupPolicy type "
                                             "Continuous.")
        restore: dict[str, Any] = props.get("restoreParameters") or {}
        source_id = str(restore.get("restoreSource") or "")
        if restore.get("restoreMode") != "PointInTime":
            return _error(400, "BadRequest", "restoreParameters.restoreMode must be PointInTime.")
        instance = source_id.rstrip("/").rsplit("/", 1)[-1].lower()
        source = next((a for a in self.accounts.values() if a.instance == instance
                       and a.backup.get("type") == "Continuous"), None)
        if source is None or "/restorabledatabaseaccounts/" not in source_id.lower():
            return _error(404, "NotFound", f"Restorable database account {source_id!r} was "
                                           "not found.")
        try:
            at = _when(restore.get("restoreTimestampInUtc"), datetime.now(UTC))
        except (TypeError, ValueError):
            return _error(400, "BadRequest", "restoreTimestampInUtc is not a timestamp.")
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if at < source.restorable_from or at > datetime.now(UTC):
            return _error(400, "BadRequest", f"Restore timestamp {_iso(at)} is outside the "
                          f"restorable range starting {_iso(source.restorable_from)}.")
        now = datetime.now(UTC)
        fraction = source.restored_fraction
        account = Account(
            "/" + request.url.path.strip("/"), location,
            {"type": "Continuous", "tier": "Continuous7Days"},
            {db: {c: int(n * fraction) for c, n in cs.items()}
             for db, cs in source.databases.items()},
            str(uuid.uuid4()), now, now, state="Creating",
            tags={str(k): str(v) for k, v in (body.get("tags") or {}).items()})
        self.accounts[key] = account
        return self._accepted(request, account, "create", 200,
                              bytes(JSONResponse(self._document(request, account)).body))

    def _delete(self, request: Request, account: Account) -> Response:
        if account.state == "Deleting":
            return self._accepted(request, account, "delete", 202, b"")
        account.state = "Deleting"
        return self._accepted(request, account, "delete", 202, b"")

    def _accepted(self, request: Request, account: Account, kind: str, status: int,
                  body: bytes) -> Response:
        op = os.urandom(16).hex()
        self.operations[op] = Operation(_key(account.id), kind, 1)
        base = f"{request.url.scheme}://{request.url.netloc}"
        sub = account.id.split("/")[2]
        loc = account.location.replace(" ", "").lower()
        prefix = f"{base}/subscriptions/{sub}/providers/Microsoft.DocumentDB/locations/{loc}"
        api = request.query_params.get("api-version", "")
        headers = {"Azure-AsyncOperation": f"{prefix}/operationsStatus/{op}?api-version={api}",
                   "retry-after-ms": "10"}
        if kind == "delete":
            headers["Location"] = f"{prefix}/operationResults/{op}?api-version={api}"
        return Response(body, status_code=status, headers=headers,
                        media_type="application/json" if body else None)

    def _operation(self, op: str, result: bool) -> Response:
        operation = self.operations[op]
        if result:
            return Response(status_code=204)
        if operation.polls_left > 0:
            operation.polls_left -= 1
            return JSONResponse({"name": op, "status": "InProgress"},
                                headers={"retry-after-ms": "10"})
        account = self.accounts.get(operation.account)
        if operation.kind == "delete":
            self.accounts.pop(operation.account, None)
        elif account is not None:
            account.state = "Succeeded"
        return JSONResponse({"name": op, "status": "Succeeded"})

    def _blob_service(self, account_id: str) -> Response:
        seed = self.storage.get(_key(account_id))
        if seed is None:
            return _error(404, "ResourceNotFound",
                          f"The Resource '{account_id}' was not found.")

        def policy(days: int | None) -> dict[str, Any]:
            return {"enabled": True, "days": days} if days else {"enabled": False}

        return JSONResponse({
            "id": f"{account_id}/blobServices/default", "name": "default",
            "type": "Microsoft.Storage/storageAccounts/blobServices",
            "properties": {"deleteRetentionPolicy": policy(seed.soft_delete_days),
                           "containerDeleteRetentionPolicy":
                               policy(seed.container_soft_delete_days),
                           "isVersioningEnabled": seed.versioning,
                           "restorePolicy": policy(seed.restore_days),
                           "changeFeed": {"enabled": seed.versioning}}})

    # --- Log Analytics -----------------------------------------------------------------------

    async def logs_query(self, request: Request) -> Response:
        token = bearer_token(request)
        if token is None:
            return JSONResponse({"error": {"code": "AuthorizationRequiredError",
                                           "message": "Valid authentication was not provided"}},
                                status_code=401)
        refused = LOG_ANALYTICS.refusal(token)
        if refused is not None:
            return _error(401, LOG_ANALYTICS.code, refused)
        workspace = request.path_params["workspace"].lower()
        if workspace not in self.workspaces:
            return _error(404, "WorkspaceNotFoundError",
                          f"Workspace {workspace[:40]} could not be found")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "BadArgumentError", "The request body is not JSON.")
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return _error(400, "BadArgumentError", "The request had some invalid properties")
        if _normal(body["query"]) != self.query:
            return JSONResponse({"error": {
                "code": "BadArgumentError", "message": "The request had some invalid properties",
                "innererror": {"code": "SyntaxError", "message": "The local endpoint answers "
                               "pitcrew's backup_jobs.kql only."}}}, status_code=400)
        now = datetime.now(UTC)
        span = str(body.get("timespan") or "P1D")
        since = now - (_duration(span) or timedelta(days=1)) if "/" not in span else \
            _when(span.split("/")[0], now)
        latest: dict[str, dict[str, Any]] = {}
        failed: dict[str, int] = {}
        for row in self.workspaces[workspace]:
            if row.get("JobOperation", "Backup") != "Backup":
                continue
            start = _when(row.get("JobStartDateTime", "-1h"), now)
            if start < since:
                continue
            item = str(row["BackupItemUniqueId"])
            failed[item] = failed.get(item, 0) + (row.get("JobStatus") == "Failed")
            if item not in latest or start > latest[item]["start"]:
                latest[item] = {"start": start, **row}
        columns = [{"name": "BackupItemUniqueId", "type": "string"},
                   {"name": "LastJobStart", "type": "datetime"},
                   {"name": "LastStatus", "type": "string"},
                   {"name": "LastFailureCode", "type": "string"},
                   {"name": "Failed", "type": "long"}]
        rows = [[item, _iso(r["start"]), r.get("JobStatus", ""), r.get("JobFailureCode", ""),
                 failed[item]] for item, r in sorted(latest.items())]
        return JSONResponse({"tables": [{"name": "PrimaryResult", "columns": columns,
                                         "rows": rows}]})

    # --- Container Registry ------------------------------------------------------------------

    async def acr(self, request: Request) -> Response:
        server = request.path_params["server"].lower()
        rest = "/" + request.path_params["rest"]
        if server not in self.images:
            return JSONResponse({"errors": [{"code": "NAME_UNKNOWN",
                                             "message": "registry not found"}]}, status_code=404)
        if rest.startswith("/oauth2/"):
            return await self._acr_token(request, server, rest)
        repo, action, reference = self._acr_route(rest, request.method)
        if repo is None:
            return JSONResponse({"errors": [{"code": "UNSUPPORTED",
                                             "message": "operation not served"}]}, status_code=404)
        needed = f"repository:{repo}:{'delete' if request.method == 'DELETE' else 'pull'}"
        token = bearer_token(request)
        if token is None or needed not in self.tokens.get(token, set()):
            base = f"{request.url.scheme}://{request.url.netloc}/acr/{server}"
            return JSONResponse(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                status_code=401, headers={"WWW-Authenticate": f'Bearer realm="{base}/oauth2/'
                                          f'token",service="{server}",scope="{needed}"'})
        with self._lock:
            images = self.images[server].get(repo)
            if images is None:
                return JSONResponse({"errors": [{"code": "NAME_UNKNOWN",
                                                 "message": f"repository {repo} not found"}]},
                                    status_code=404)
            return self._acr_answer(server, repo, images, action, reference)

    @staticmethod
    def _acr_route(rest: str, method: str) -> tuple[str | None, str, str]:
        if method == "GET" and rest.startswith("/acr/v1/"):
            tail = rest[len("/acr/v1/"):]
            for marker in ("/_manifests", "/_tags"):
                if marker in tail:
                    repo, _, ref = tail.partition(marker)
                    return repo, marker[2:], ref.strip("/")
        if method == "DELETE" and rest.startswith("/v2/") and "/manifests/" in rest:
            repo, _, ref = rest[len("/v2/"):].partition("/manifests/")
            return repo, "delete", ref
        return None, "", ""

    def _acr_answer(self, server: str, repo: str, images: list[Image], action: str,
                    reference: str) -> Response:
        def attrs(i: Image) -> dict[str, Any]:
            return {"deleteEnabled": not i.locked, "writeEnabled": not i.locked,
                    "readEnabled": True, "listEnabled": True}

        def manifest(i: Image) -> dict[str, Any]:
            return {"digest": i.digest, "imageSize": i.size, "createdTime": _iso(i.updated),
                    "lastUpdateTime": _iso(i.updated), "tags": i.tags,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "changeableAttributes": attrs(i)}

        unknown = JSONResponse({"errors": [{"code": "MANIFEST_UNKNOWN",
                                            "message": "manifest unknown"}]}, status_code=404)
        if action == "manifests" and not reference:
            return JSONResponse({"registry": server, "imageName": repo,
                                 "manifests": [manifest(i) for i in images]})
        if action == "manifests":
            found = next((i for i in images if i.digest == reference), None)
            return JSONResponse({"registry": server, "imageName": repo,
                                 "manifest": manifest(found)}) if found else unknown
        if action == "tags":
            found = next((i for i in images if reference in i.tags), None)
            if found is None:
                return unknown
            return JSONResponse({"registry": server, "imageName": repo, "tag": {
                "name": reference, "digest": found.digest, "createdTime": _iso(found.updated),
                "lastUpdateTime": _iso(found.updated), "signed": False,
                "changeableAttributes": attrs(found)}})
        found = next((i for i in images if i.digest == reference), None)
        if found is None:
            return unknown
        if found.locked:
            return JSONResponse({"errors": [{"code": "UNSUPPORTED", "message": "The operation "
                                             "is unsupported: the image is locked."}]},
                                status_code=405)
        images.remove(found)
        self.deleted_images.append(f"{server}/{repo}@{found.digest}")
        return Response(status_code=202)

    async def _acr_token(self, request: Request, server: str, rest: str) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8",
                                                                        "replace")).items()}
        if form.get("service", "").lower() != server:
            return JSONResponse({"errors": [{"code": "UNAUTHORIZED",
                                             "message": "service mismatch"}]}, status_code=401)
        if rest == "/oauth2/exchange":
            if form.get("grant_type") != "access_token" or not form.get("access_token"):
                return JSONResponse({"errors": [{"code": "UNAUTHORIZED",
                                                 "message": "access_token grant required"}]},
                                    status_code=401)
            refused = CONTAINER_REGISTRY.refusal(form["access_token"])
            if refused is not None:
                return JSONResponse({"errors": [{"code": CONTAINER_REGISTRY.code,
                                                 "message": refused}]}, status_code=401)
            claims = base64.urlsafe_b64encode(json.dumps(
                {"exp": int(time.time()) + 3600, "aud": server}).encode()).decode().rstrip("=")
            refresh = f"e30.{claims}.{os.urandom(8).hex()}"
            self.tokens[refresh] = {"refresh"}
            return JSONResponse({"refresh_token": refresh})
        if rest == "/oauth2/token":
            refresh = form.get("refresh_token", "")
            if form.get("grant_type") != "refresh_token" or \
                    "refresh" not in self.tokens.get(refresh, set()):
                return JSONResponse({"errors": [{"code": "UNAUTHORIZED",
                                                 "message": "invalid refresh token"}]},
                                    status_code=401)
            access = "acr." + os.urandom(16).hex()
            self.tokens[access] = set(form.get("scope", "").split())
            return JSONResponse({"access_token": access})
        return JSONResponse({"errors": [{"code": "UNSUPPORTED", "message": "not served"}]},
                            status_code=404)

    # --- inspection ----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"cosmos": {a.id: {"state": a.state, "tags": a.tags}
                               for a in self.accounts.values()},
                    "deletedImages": list(self.deleted_images)}
