"""Data-plane probes a rotation's "test the new key" step calls, each verifying the signature the
real service would verify, against the keys the endpoint currently holds:

    GET /cosmos/{account}/            database account (master-key auth)
    GET /cosmos/{account}/dbs         list databases (always empty)
    GET /storage/{account}/blob/?restype=service&comp=properties   (SharedKey)
    GET /storage/{account}/blob/?comp=list                         list containers (empty)
    GET /storage/{account}/blob/?restype=account&comp=properties   account info
    GET /servicebus/{namespace}[/{entity}...]   SAS (namespace rule, or the entity's rule);
                                                a management read: the rule needs Manage
    POST /servicebus/{namespace}/{entity}/messages/head   peek-lock, always empty: Listen (204)
    POST /servicebus/{namespace}/{entity}/messages        send: Send (an empty batch: 400)
    /eventhubs/{namespace}/...                  the same, for Event Hubs rules

The SAS routes model the rule's rights as Azure does: a valid signature from a rule without the
right gets 401 "Unauthorized access. '<claims>' claim(s) are required to perform this operation".

A wrong or previous key gets the service's answer: 401 for Cosmos DB, Service Bus and Event Hubs,
403 `AuthenticationFailed` for Storage (what Azure Storage returns; the storage SDK raises
ClientAuthenticationError for it, the same class a 401 gives). A success names the key that
matched (`x-ms-local-key` header and, for JSON answers, a `matchedKey` field), so a test can
assert that the *new* key is the one proven.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pitcrew_dev.azure_endpoint.resources import (
    ResourceKind,
    account_of,
    entity_of,
    namespace_of,
    resource_name,
)
from pitcrew_dev.azure_endpoint.signatures import (
    SignatureError,
    verify_cosmos,
    verify_sas,
    verify_storage_shared_key,
)
from pitcrew_dev.azure_endpoint.state import ResourceRecord, StateStore

XML = "application/xml"
SERVICE_PROPERTIES = (
    '<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties>'
    "<Logging><Version>1.0</Version><Read>false</Read><Write>false</Write><Delete>false</Delete>"
    "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></Logging>"
    "<Cors /><DefaultServiceVersion>2021-12-02</DefaultServiceVersion>"
    "</StorageServiceProperties>"
)


class DataPlaneApp:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def _find(self, kind: ResourceKind, name: str) -> list[ResourceRecord]:
        # Account and namespace names are globally unique in Azure, so a name finds the resource.
        with self.store.read() as data:
            records = [r for r in data.resources.values() if r.kind is kind]
        if kind in (ResourceKind.COSMOS_ACCOUNT, ResourceKind.STORAGE_ACCOUNT):
            return [r for r in records if account_of(r.id).lower() == name.lower()]
        return [r for r in records if namespace_of(r.id).lower() == name.lower()]

    # --- Cosmos DB ---------------------------------------------------------------------------

    async def cosmos(self, request: Request) -> Response:
        account = request.path_params["account"]
        rest = request.path_params.get("rest", "")
        records = self._find(ResourceKind.COSMOS_ACCOUNT, account)
        if not records:
            return _json_error(404, "NotFound", f"Cosmos DB account {account!r} is not seeded.")
        if records[0].network_denied:
            client = request.client.host if request.client else "unknown"
            return _cosmos_error(403, "Forbidden", f"Request originated from IP {client} through "
                                 "public internet. This is blocked by your Cosmos DB account "
                                 "firewall settings. More info: https://aka.ms/cosmosdb-tsg-forbidden")
        if not records[0].local_auth:
            return _cosmos_error(401, "Unauthorized", "Local Authorization is disabled. Use an AAD "
                                 "token to authorize all requests.", substatus=5202)
        try:
            matched = verify_cosmos(
                request.headers.get("authorization"),
                request.method,
                rest,
                request.headers.get("x-ms-date"),
                records[0].keys,
            )
        except SignatureError as error:
            return _json_error(401, "Unauthorized", str(error))
        headers = {"x-ms-local-key": matched}
        base = f"{request.url.scheme}://{request.url.netloc}/cosmos/{account}/"
        path = rest.strip("/")
        if path == "":
            return JSONResponse(
                {
                    "id": account,
                    "_self": "",
                    "writableLocations": [{"name": "local", "databaseAccountEndpoint": base}],
                    "readableLocations": [{"name": "local", "databaseAccountEndpoint": base}],
                    "matchedKey": matched,
                },
                headers=headers,
            )
        if path == "dbs":
            return JSONResponse(
                {"_rid": "", "Databases": [], "_count": 0, "matchedKey": matched}, headers=headers
            )
        return _json_error(404, "NotFound", f"Resource {path!r} does not exist locally.")

    # --- Storage -----------------------------------------------------------------------------

    async def storage(self, request: Request) -> Response:
        account = request.path_params["account"]
        records = self._find(ResourceKind.STORAGE_ACCOUNT, account)
        if not records:
            return _storage_error(404, "ResourceNotFound", f"Account {account!r} is not seeded.")
        authorization = request.headers.get("authorization")
        if not authorization:
            return _storage_error(
                401, "NoAuthenticationInformation", "The request has no Authorization header."
            )
        if records[0].network_denied:
            return _storage_error(403, "AuthorizationFailure",
                                  "This request is not authorized to perform this operation.")
        if not records[0].shared_key_access and authorization.startswith("SharedKey "):
            return _storage_error(403, "KeyBasedAuthenticationNotPermitted",
                                  "Key based authentication is not permitted on this storage "
                                  "account.")
        try:
            matched = verify_storage_shared_key(
                authorization,
                request.method,
                dict(request.headers),
                account,
                request.scope["raw_path"].decode("latin-1"),
                request.scope["query_string"].decode("latin-1"),
                records[0].keys,
            )
        except SignatureError as error:
            return _storage_error(403, "AuthenticationFailed", str(error))
        headers = {
            "x-ms-local-key": matched,
            "x-ms-version": request.headers.get("x-ms-version", ""),
        }
        restype = request.query_params.get("restype")
        comp = request.query_params.get("comp")
        if restype == "service" and comp == "properties":
            return Response(SERVICE_PROPERTIES, media_type=XML, headers=headers)
        if comp == "list":
            endpoint = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
            body = (
                '<?xml version="1.0" encoding="utf-8"?>'
                f'<EnumerationResults ServiceEndpoint="{endpoint}">'
                "<Containers /><NextMarker /></EnumerationResults>"
            )
            return Response(body, media_type=XML, headers=headers)
        if restype == "account" and comp == "properties":
            headers.update({"x-ms-sku-name": "Standard_LRS", "x-ms-account-kind": "StorageV2"})
            return Response(status_code=200, headers=headers)
        return _storage_error(
            400,
            "UnsupportedQueryParameter",
            "The local blob endpoint serves service operations only.",
        )

    # --- Service Bus / Event Hubs ------------------------------------------------------------

    async def servicebus(self, request: Request) -> Response:
        return await self._sas(request, ResourceKind.SERVICEBUS_RULE)

    async def eventhubs(self, request: Request) -> Response:
        return await self._sas(request, ResourceKind.EVENTHUB_RULE)

    async def _sas(self, request: Request, kind: ResourceKind) -> Response:
        namespace = request.path_params["namespace"]
        rest = (request.path_params.get("rest") or "").strip("/")
        entity = rest.split("/")[0] or None
        records = self._find(kind, namespace)
        if not records:
            return _json_error(404, "NotFound", f"Namespace {namespace!r} is not seeded.")
        if any(record.network_denied for record in records):  # the namespace's IP firewall
            # Azure refuses an address its IP filter does not admit as an authorization error
            # (ServiceBusAuthorizationError on AMQP, 401 over HTTPS), whatever the key.
            return _servicebus_error(401, "Ip has been prevented to connect to the endpoint. "
                                     "For more information see: Virtual Network service "
                                     "endpoints and IP firewall rules.")
        if not all(record.local_auth for record in records):  # a namespace-wide setting
            return _servicebus_error(401, "LocalAuthDisabled: Authorization failed because SAS "
                                     "authentication has been disabled for the namespace.")
        # A namespace rule covers every entity; an entity rule only its own entity.
        rules: dict[str, dict[str, str]] = {}
        rights: dict[tuple[str, str], list[str]] = {}
        for record in records:
            rule_entity = entity_of(record.id)
            if rule_entity is None or (entity and rule_entity.lower() == entity.lower()):
                rule = resource_name(record.id)
                for name, value in record.keys.items():
                    key_name = f"{rule_entity or ''}:{name}".lstrip(":")
                    rules.setdefault(rule, {})[key_name] = value
                    rights[(rule, key_name)] = list(record.rights)
        url = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        try:
            rule, matched = verify_sas(request.headers.get("authorization"), url, rules)
        except SignatureError as error:
            return _json_error(401, "Unauthorized", str(error))
        needed, claims = _claim_for(request.method, rest)
        if needed not in rights.get((rule, matched), []):
            # Azure checks the rule's rights after the signature: the same 401 and wording.
            host = f"{namespace}.servicebus.windows.net"
            return _servicebus_error(
                401,
                f"Unauthorized access. '{claims}' claim(s) are required to perform this "
                f"operation. Resource: 'sb://{host}/{rest}'.",
            )
        headers = {"x-ms-local-key": matched, "x-ms-local-right": needed}
        if needed == "Listen":
            # Peek-lock with timeout=0 on a queue that is always empty: nothing is locked.
            return Response(status_code=204, headers=headers)
        if needed == "Send":
            body = (await request.body()).strip()
            if body in (b"", b"[]"):
                # Rejected after the Send claim was checked, before anything is enqueued.
                return _servicebus_error(400, "The message batch is empty.", headers)
            return Response(status_code=201, headers=headers)  # accepted and discarded locally
        return JSONResponse(
            {"namespace": namespace, "entity": entity, "rule": rule, "matchedKey": matched},
            headers=headers,
        )


def _claim_for(method: str, rest: str) -> tuple[str, str]:
    """(the right an operation needs, the claims Azure's refusal names) for a SAS request.

    POST {entity}/messages/head   peek-lock (receive)         Listen
    POST {entity}/messages        send                        Send
    GET  anything                 entity / namespace reads    Manage (Azure: 'Manage,EntityRead')
    """
    path = rest.lower().rstrip("/")
    if method == "POST" and path.endswith("/messages/head"):
        return "Listen", "Listen"
    if method == "POST" and path.endswith("/messages"):
        return "Send", "Send"
    return "Manage", "Manage,EntityRead"


def _servicebus_error(
    status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """Service Bus REST errors: <Error><Code>status</Code><Detail>...</Detail></Error>."""
    escaped = detail.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = f"<Error><Code>{status}</Code><Detail>{escaped}</Detail></Error>"
    return Response(body, status_code=status, media_type=XML, headers=headers)


def _cosmos_error(status: int, code: str, message: str, *, substatus: int = 0) -> JSONResponse:
    """Cosmos DB's gateway errors: {"code", "message"} and the x-ms-substatus header."""
    return JSONResponse({"code": code, "message": message}, status_code=status,
                        headers={"x-ms-substatus": str(substatus)})


def _json_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _storage_error(status: int, code: str, message: str) -> Response:
    escaped = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{escaped}</Message></Error>"
    )
    return Response(body, status_code=status, media_type=XML, headers={"x-ms-error-code": code})
