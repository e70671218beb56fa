"""The few Azure Resource Manager operations pitcrew calls, in management.azure.com's shapes.

Paths are ARM's, under the endpoint's root, so a management client built with
`base_url=<endpoint url>` reaches them unchanged:

    POST {id}/listKeys | /regenerateKey       Microsoft.DocumentDB/databaseAccounts/{a}
    POST {id}/readonlykeys | /listConnectionStrings
    POST {id}/listKeys | /regenerateKey       Microsoft.Storage/storageAccounts/{a}
    POST {id}/listKeys | /regenerateKeys      Microsoft.ServiceBus/namespaces/{n}[/queues/{q}|
                                              /topics/{t}]/AuthorizationRules/{r}
    POST {id}/listKeys | /regenerateKeys      Microsoft.EventHub/namespaces/{n}[/eventhubs/{e}]
                                              /authorizationRules/{r}
    POST {id}/restart                         Microsoft.Web/sites/{s}
    POST {id}/config/configreferences/appsettings/refresh
                                              Microsoft.Web/sites/{s}: re-read Key Vault references
    GET  {id}                                 a minimal resource document (rules: their rights)

Cosmos DB's regenerateKey is long-running in Azure, so it answers 202 with Azure-AsyncOperation
and Location like the real service; the key is already regenerated when the 202 leaves, and the
status URL reports Succeeded, so the SDK poller finishes on its first poll. `retry-after-ms: 10`
(not `Retry-After: 0`, which azure-core reads as "no hint" and replaces with the client's
30-second polling interval) keeps that poll immediate.

Every request needs a bearer token issued for ARM (401 InvalidAuthenticationTokenAudience
otherwise, see credential.ARM); `api-version` is required, as ARM requires it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pitcrew_dev.azure_endpoint.config import EndpointConfig
from pitcrew_dev.azure_endpoint.credential import ARM, principal_from_token
from pitcrew_dev.azure_endpoint.resources import (
    ResourceKind,
    account_of,
    canonical_id,
    entity_of,
    namespace_of,
    resource_name,
    spec_for,
)
from pitcrew_dev.azure_endpoint.state import ResourceRecord, StateStore

COSMOS_KEY_KINDS = {
    "primary": "primaryMasterKey",
    "secondary": "secondaryMasterKey",
    "primaryreadonly": "primaryReadonlyMasterKey",
    "secondaryreadonly": "secondaryReadonlyMasterKey",
}
RULE_KEY_TYPES = {"primarykey": "primaryKey", "secondarykey": "secondaryKey"}
STORAGE_KEY_NAMES = {"key1": "key1", "key2": "key2"}


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(error: ArmError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message}},
        status_code=error.status,
        headers=headers,
    )


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _action_name(record: ResourceRecord, action: str) -> str:
    """The RBAC action ARM names in an AuthorizationFailed, e.g.
    Microsoft.DocumentDB/databaseAccounts/listKeys/action."""
    parts = record.id.strip("/").split("/")
    provider_at = [p.lower() for p in parts].index("providers") + 1
    types = parts[provider_at + 1::2]
    return "/".join([parts[provider_at], *types, action, "action"])


class ArmApp:
    def __init__(self, store: StateStore, config: EndpointConfig) -> None:
        self.store = store
        self.config = config
        self.challenge = (
            f'Bearer authorization_uri="https://login.microsoftonline.com/{config.tenant_id}", '
            'error="invalid_token", error_description="The authentication failed because of '
            "missing 'Authorization' header.\""
        )

    async def handle(self, request: Request) -> Response:
        token = bearer_token(request)
        if token is None:
            return _error(
                ArmError(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                ),
                headers={"WWW-Authenticate": self.challenge},
            )
        # Authentication comes before request validation, as in ARM.
        refused = ARM.refusal(token)
        if refused is not None:
            return _error(ArmError(401, ARM.code, refused))
        if not request.query_params.get("api-version"):
            return _error(
                ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            )
        try:
            return await self._dispatch(request, principal_from_token(token))
        except ArmError as error:
            return _error(error)

    async def _dispatch(self, request: Request, principal: str) -> Response:
        path = request.url.path.rstrip("/")
        segments = path.split("/")
        lowered = [s.lower() for s in segments]
        if "operationsstatus" in lowered or "operationresults" in lowered:
            return self._operation(request, lowered)
        if request.method == "GET":
            return JSONResponse(self._document(request, self._resource(path)))
        if request.method != "POST":
            raise ArmError(405, "MethodNotAllowed", f"{request.method} is not supported here.")
        if lowered[-4:] == ["config", "configreferences", "appsettings", "refresh"]:
            # App Service's "refresh Key Vault references" action lives under the site's config.
            resource_id, action = "/".join(segments[:-4]), "refreshkeyvaultreferences"
        else:
            resource_id, action = path.rsplit("/", 1)
        record = self._resource(resource_id)
        if record.rbac_denied:
            raise ArmError(403, "AuthorizationFailed", (
                f"The client '{principal}' with object id '{principal}' does not have "
                f"authorization to perform action '{_action_name(record, action)}' over scope "
                f"'{record.id}' or the scope is invalid. If access was recently granted, please "
                "refresh your credentials."))
        if record.lock == "ReadOnly":
            raise ArmError(409, "ScopeLocked", (
                f"The scope '{record.id}' cannot perform write operation because following "
                f"scope(s) are locked: '{record.id}'. Please remove the lock and try again."))
        body = await self._json(request)
        return self._action(request, record, action.lower(), body, principal)

    def _resource(self, resource_id: str) -> ResourceRecord:
        spec = spec_for(resource_id)
        if spec is None:
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The local Azure endpoint does not serve resource {resource_id!r}.",
            )
        with self.store.read() as data:
            record = data.resources.get(canonical_id(resource_id))
        if record is None:
            if not self.config.auto_create:
                raise ArmError(
                    404,
                    "ResourceNotFound",
                    f"The Resource '{resource_id}' was not found (seed it in the local endpoint's "
                    "config, or enable auto_create).",
                )
            record = self.store.ensure_resource(resource_id)
        return record

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise ArmError(400, "InvalidRequestContent", "The request body is not JSON.") from None
        if not isinstance(body, dict):
            raise ArmError(400, "InvalidRequestContent", "The request body must be an object.")
        return body

    def _action(
        self,
        request: Request,
        record: ResourceRecord,
        action: str,
        body: dict[str, Any],
        principal: str,
    ) -> Response:
        kind = record.kind
        base = f"{request.url.scheme}://{request.url.netloc}"
        if kind is ResourceKind.COSMOS_ACCOUNT:
            if action == "listkeys":
                return JSONResponse(self._keys(record))
            if action == "readonlykeys":
                keys = self._keys(record)
                return JSONResponse(
                    {k: v for k, v in keys.items() if k.endswith("ReadonlyMasterKey")}
                )
            if action == "listconnectionstrings":
                return JSONResponse(self._cosmos_connection_strings(base, record))
            if action == "regeneratekey":
                key_name = self._pick(body, "keyKind", COSMOS_KEY_KINDS)
                self.store.regenerate(record.id, key_name, principal, None)
                return self._accepted(request, record)
        elif kind is ResourceKind.STORAGE_ACCOUNT:
            if action == "listkeys":
                return JSONResponse(self._storage_keys(record))
            if action == "regeneratekey":
                key_name = self._pick(body, "keyName", STORAGE_KEY_NAMES)
                self.store.regenerate(record.id, key_name, principal, None)
                return JSONResponse(self._storage_keys(self._resource(record.id)))
        elif kind in (ResourceKind.SERVICEBUS_RULE, ResourceKind.EVENTHUB_RULE):
            if action == "listkeys":
                return JSONResponse(self._access_keys(record))
            if action == "regeneratekeys":
                key_name = self._pick(body, "keyType", RULE_KEY_TYPES)
                value = body.get("key")
                if value is not None:
                    _check_base64(value)
                self.store.regenerate(record.id, key_name, principal, value)
                return JSONResponse(self._access_keys(self._resource(record.id)))
        elif kind is ResourceKind.WEB_SITE and action == "restart":
            self.store.restart(record.id, principal)
            return Response(status_code=200)
        elif kind is ResourceKind.WEB_SITE and action == "refreshkeyvaultreferences":
            self.store.refresh_references(record.id, principal)
            return Response(status_code=200)
        raise ArmError(
            404,
            "InvalidResourceOperation",
            f"Operation {action!r} is not served for {kind.value} by the local Azure endpoint.",
        )

    @staticmethod
    def _pick(body: dict[str, Any], field: str, choices: dict[str, str]) -> str:
        value = body.get(field)
        if not isinstance(value, str) or value.lower() not in choices:
            raise ArmError(
                400,
                "BadRequest",
                f"The request body needs {field!r} set to one of "
                f"{sorted(set(choices.values()) if field != 'keyKind' else choices)}; "
                f"got {value!r}.",
            )
        return choices[value.lower()]

    def _accepted(self, request: Request, record: ResourceRecord) -> Response:
        operation = os.urandom(16).hex()
        subscription = record.id.split("/")[2]
        provider = record.kind.value.split("/")[0]
        base = f"{request.url.scheme}://{request.url.netloc}"
        api_version = request.query_params.get("api-version", "")
        prefix = f"{base}/subscriptions/{subscription}/providers/{provider}/locations/local"
        return Response(
            status_code=202,
            headers={
                "Azure-AsyncOperation": (
                    f"{prefix}/operationsStatus/{operation}?api-version={api_version}"
                ),
                "Location": f"{prefix}/operationResults/{operation}?api-version={api_version}",
                "retry-after-ms": "10",
            },
        )

    @staticmethod
    def _operation(request: Request, lowered: list[str]) -> Response:
        # Operations complete before their 202 is sent, so every status is final.
        operation = lowered[-1]
        if "operationsstatus" in lowered:
            return JSONResponse(
                {"id": request.url.path, "name": operation, "status": "Succeeded"},
                headers={"retry-after-ms": "10"},
            )
        return Response(status_code=204)

    @staticmethod
    def _keys(record: ResourceRecord) -> dict[str, str]:
        return dict(record.keys)

    @staticmethod
    def _storage_keys(record: ResourceRecord) -> dict[str, Any]:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        return {
            "keys": [
                {
                    "keyName": name,
                    "value": record.keys[name],
                    "permissions": "FULL",
                    "creationTime": created,
                }
                for name in ("key1", "key2")
            ]
        }

    @staticmethod
    def _access_keys(record: ResourceRecord) -> dict[str, Any]:
        namespace = namespace_of(record.id)
        rule = resource_name(record.id)
        entity = entity_of(record.id)
        # Connection strings keep the cloud shape consumers parse (Event Hubs shares Service
        # Bus's host suffix); the local SAS check lives under /servicebus/ and /eventhubs/.
        host = f"{namespace}.servicebus.windows.net"
        suffix = f";EntityPath={entity}" if entity else ""

        def connection_string(key: str) -> str:
            return f"Endpoint=sb://{host}/;SharedAccessKeyName={rule};SharedAccessKey={key}{suffix}"

        return {
            "keyName": rule,
            "primaryKey": record.keys["primaryKey"],
            "secondaryKey": record.keys["secondaryKey"],
            "primaryConnectionString": connection_string(record.keys["primaryKey"]),
            "secondaryConnectionString": connection_string(record.keys["secondaryKey"]),
        }

    @staticmethod
    def _cosmos_connection_strings(base: str, record: ResourceRecord) -> dict[str, Any]:
        endpoint = f"{base}/cosmos/{account_of(record.id)}/"
        labels = {
            "primaryMasterKey": ("Primary SQL Connection String", "Primary"),
            "secondaryMasterKey": ("Secondary SQL Connection String", "Secondary"),
            "primaryReadonlyMasterKey": (
                "Primary Read-Only SQL Connection String",
                "PrimaryReadonly",
            ),
            "secondaryReadonlyMasterKey": (
                "Secondary Read-Only SQL Connection String",
                "SecondaryReadonly",
            ),
        }
        return {
            "connectionStrings": [
                {
                    "connectionString": (
                        f"AccountEndpoint={endpoint};AccountKey={record.keys[name]};"
                    ),
                    "description": description,
                    "keyKind": key_kind,
                    "type": "Sql",
                }
                for name, (description, key_kind) in labels.items()
            ]
        }

    @staticmethod
    def _document(request: Request, record: ResourceRecord) -> dict[str, Any]:
        base = f"{request.url.scheme}://{request.url.netloc}"
        name = resource_name(record.id)
        properties: dict[str, Any] = {"provisioningState": "Succeeded"}
        if record.kind is ResourceKind.COSMOS_ACCOUNT:
            properties["documentEndpoint"] = f"{base}/cosmos/{name}/"
        elif record.kind is ResourceKind.STORAGE_ACCOUNT:
            properties["primaryEndpoints"] = {"blob": f"{base}/storage/{name}/blob/"}
        elif record.kind in (ResourceKind.SERVICEBUS_RULE, ResourceKind.EVENTHUB_RULE):
            properties["rights"] = list(record.rights)
        return {
            "id": record.id,
            "name": name,
            "type": record.kind.value,
            "location": "local",
            "properties": properties,
        }


def _check_base64(value: Any) -> None:
    try:
        ok = isinstance(value, str) and len(base64.b64decode(value, validate=True)) >= 16
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        # Never echo the value: it is a key.
        raise ArmError(400, "BadRequest", "'key' must be base64 of at least 16 bytes.")
