"""Key Vault secrets REST API (7.x shapes, any api-version accepted) for one vault.

Each vault is served on its own port: azure-keyvault-secrets builds request URLs as
`vault_url + /secrets/...` and parses the ids it gets back as `https://host[:port]/secrets/name
[/version]`, so a vault cannot live under a path prefix without breaking `KeyVaultSecretIdentifier`.

Authentication follows Key Vault's challenge protocol: a request without a bearer token gets 401
and `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
resource="https://vault.azure.net"`; a token issued for another audience gets 401 AKV10022 (with
the same challenge), as Key Vault answers it. The SDK checks that the vault host ends with the
challenge's resource domain, which 127.0.0.1 cannot, so clients pass
`verify_challenge_resource=False` (see docs/local-azure.md).

Secret values never reach a log line or an error message: errors name the secret and version only.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pitcrew_dev.azure_endpoint.credential import KEY_VAULT, principal_from_token
from pitcrew_dev.azure_endpoint.state import SecretRecord, SecretVersion, StateStore, VaultRecord

SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
MAX_VALUE_BYTES = 25 * 1024  # Key Vault's 25 KB limit on a secret value, in bytes (UTF-8)
MAX_CONTENT_TYPE = 255  # characters
MAX_TAGS = 15
DEFAULT_PAGE = 25
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90


class KeyVaultError(Exception):
    """An error answered in Key Vault's `{"error": {"code", "message"}}` shape."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner  # Key Vault's `innererror.code`, e.g. SecretDisabled, ForbiddenByRbac


class AttributesIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    enabled: bool | None = None
    nbf: int | None = None
    exp: int | None = None


class SetSecretBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    value: str = Field(repr=False)
    tags: dict[str, str] | None = None
    content_type: str | None = Field(default=None, alias="contentType")
    attributes: AttributesIn | None = None


class UpdateSecretBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tags: dict[str, str] | None = None
    content_type: str | None = Field(default=None, alias="contentType")
    attributes: AttributesIn | None = None


def _check_content_type(content_type: str | None) -> None:
    if content_type is not None and len(content_type) > MAX_CONTENT_TYPE:
        raise KeyVaultError(400, "BadParameter",
                            f"The content type exceeds {MAX_CONTENT_TYPE} characters.")


def _parse(model: type[BaseModel], raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        # Build the message from field locations and error kinds only: pydantic's own message
        # quotes the input, which for a set-secret body is the secret value.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['type']}"
            for error in exc.errors(include_input=False)
        )
        raise KeyVaultError(
            400, "BadParameter", f"The request body is invalid ({problems})."
        ) from None


def _check_tags(tags: dict[str, str] | None) -> None:
    if tags is None:
        return
    if len(tags) > MAX_TAGS:
        raise KeyVaultError(400, "BadParameter", f"A secret can have at most {MAX_TAGS} tags.")
    for name, value in tags.items():
        if len(name) > 512 or len(value) > 256:
            raise KeyVaultError(
                400, "BadParameter", f"Tag {name[:64]!r}: names <= 512 and values <= 256 chars."
            )


def _check_name(name: str) -> None:
    if not SECRET_NAME.match(name):
        raise KeyVaultError(
            400,
            "BadParameter",
            f"The secret name {name[:130]!r} is invalid: 1-127 letters, digits and hyphens.",
        )


def _attributes(version: Any, **extra: Any) -> dict[str, Any]:
    """Key Vault's `attributes` of a secret, key or certificate version (`extra` adds what one
    object type has beyond the others, e.g. a key's `exportable`)."""
    attributes: dict[str, Any] = {
        "enabled": version.enabled,
        "created": version.created,
        "updated": version.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RECOVERABLE_DAYS,
        **extra,
    }
    if version.not_before is not None:
        attributes["nbf"] = version.not_before
    if version.expires is not None:
        attributes["exp"] = version.expires
    return attributes


def _bundle(
    base: str, record: SecretRecord, version: SecretVersion, *, with_value: bool
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "id": f"{base}/secrets/{record.name}/{version.version}",
        "attributes": _attributes(version),
        "tags": dict(version.tags),
    }
    if version.content_type is not None:
        bundle["contentType"] = version.content_type
    if with_value:
        bundle["value"] = version.value
    return bundle


def _deleted_bundle(base: str, record: SecretRecord) -> dict[str, Any]:
    assert record.deleted_on is not None
    bundle = _bundle(base, record, record.latest, with_value=False)
    bundle["recoveryId"] = f"{base}/deletedsecrets/{record.name}"
    bundle["deletedDate"] = record.deleted_on
    bundle["scheduledPurgeDate"] = record.deleted_on + RECOVERABLE_DAYS * 86400
    return bundle


def _not_found(name: str, version: str | None = None) -> KeyVaultError:
    what = f"{name}/{version}" if version else name
    return KeyVaultError(
        404, "SecretNotFound", f"A secret with (name/id) {what} was not found in this key vault."
    )


def _page_args(request: Request) -> tuple[int, int]:
    try:
        size = int(request.query_params.get("maxresults") or DEFAULT_PAGE)
        start = int(request.query_params.get("$skiptoken") or 0)
    except ValueError:
        raise KeyVaultError(
            400, "BadParameter", "maxresults and $skiptoken must be integers."
        ) from None
    if not 1 <= size <= DEFAULT_PAGE:
        raise KeyVaultError(
            400, "BadParameter", f"maxresults must be between 1 and {DEFAULT_PAGE}."
        )
    return size, max(start, 0)


def _page(request: Request, base: str, items: list[dict[str, Any]]) -> JSONResponse:
    size, start = _page_args(request)
    end = start + size
    next_link = None
    if end < len(items):
        api_version = request.query_params.get("api-version", "")
        next_link = (
            f"{base}{request.url.path}?api-version={api_version}&$skiptoken={end}&maxresults={size}"
        )
    return JSONResponse({"value": items[start:end], "nextLink": next_link})


class VaultApp:
    """The routes of one vault, bound to its record in the shared StateStore."""

    def __init__(self, store: StateStore, vault_name: str, tenant_id: str,
                 extra: Sequence[Callable[[VaultApp], list[Route]]] = ()) -> None:
        self.store = store
        self.extra = extra  # more object types' routes (keys, certificates) on this vault
        self.vault_key = vault_name.lower()
        self.vault_name = vault_name
        # Principals (LocalCredential names) without a data-plane role on this vault: their
        # requests get Key Vault's 403 ForbiddenByRbac. Set through PUT /_local/access.
        self.denied: set[str] = set()
        self.challenge = (
            f'Bearer authorization="https://login.microsoftonline.com/{tenant_id}", '
            'resource="https://vault.azure.net"'
        )

    def _vault(self, data: Any) -> VaultRecord:
        vault: VaultRecord = data.vaults.setdefault(self.vault_key, VaultRecord())
        return vault

    @staticmethod
    def _base(request: Request) -> str:
        # Ids use the authority the client called, so they parse back to the client's vault_url.
        return f"{request.url.scheme}://{request.url.netloc}"

    def app(self) -> Starlette:
        routes = [
            Route("/secrets", self.list_secrets, methods=["GET"]),
            Route("/secrets/", self.list_secrets, methods=["GET"]),
            Route("/secrets/{name}", self.secret, methods=["GET", "PUT", "DELETE", "PATCH"]),
            Route("/secrets/{name}/", self.secret, methods=["GET", "PATCH"]),
            Route("/secrets/{name}/versions", self.list_versions, methods=["GET"]),
            Route("/secrets/{name}/{version}", self.secret, methods=["GET", "PATCH"]),
            Route("/deletedsecrets", self.list_deleted, methods=["GET"]),
            Route("/deletedsecrets/{name}", self.deleted_secret, methods=["GET", "DELETE"]),
            Route("/deletedsecrets/{name}/recover", self.recover, methods=["POST"]),
        ]
        for routes_of in self.extra:
            routes.extend(routes_of(self))
        return Starlette(routes=routes)

    def build(self) -> Any:
        """The vault's ASGI app: the bearer challenge in front of the secrets routes."""
        inner = self.app()

        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            request = Request(scope, receive)
            if request.url.path == "/_local/access":
                response_: Response = await self.access(request)
                await response_(scope, receive, send)
                return
            token = _bearer(request) or ""
            # Authentication (a token, for Key Vault's audience) before authorization (RBAC).
            refused = KEY_VAULT.refusal(token) if token \
                else "AKV10000: Request is missing a Bearer or PoP token."
            if refused is not None:
                # Every 401 carries the challenge, so the SDK's policy can ask for the right
                # token once before it gives up.
                response: Response = JSONResponse(
                    {"error": {"code": KEY_VAULT.code, "message": refused}},
                    status_code=401,
                    headers={"WWW-Authenticate": self.challenge},
                )
                await response(scope, receive, send)
                return
            if principal_from_token(token) in self.denied:
                await _rbac_denied(request, self.vault_name, principal_from_token(token))(
                    scope, receive, send)
                return
            await inner(scope, receive, send)

        return asgi

    async def access(self, request: Request) -> Response:
        """GET/PUT /_local/access {"deny": [principal, ...]} (inspection port, no auth): which
        identities hold no role on this vault, to rehearse a missing role assignment."""
        if request.method == "PUT":
            try:
                body = json.loads(await request.body() or b"{}")
                deny = body.get("deny", [])
                if not isinstance(deny, list) or not all(isinstance(d, str) for d in deny):
                    raise ValueError
            except ValueError:
                return JSONResponse({"error": "body must be {\"deny\": [principal, ...]}"},
                                    status_code=400)
            self.denied = set(deny)
        return JSONResponse({"deny": sorted(self.denied)})

    # --- handlers ----------------------------------------------------------------------------

    async def secret(self, request: Request) -> Response:
        name = request.path_params["name"]
        version = request.path_params.get("version") or None
        try:
            _check_name(name)
            if request.method == "PUT":
                return self._set(request, name, await request.body())
            if request.method == "PATCH":
                return self._update(request, name, version, await request.body())
            if request.method == "DELETE":
                return self._delete(request, name)
            return self._get(request, name, version)
        except KeyVaultError as error:
            return _error(error)

    def _set(self, request: Request, name: str, raw: bytes) -> Response:
        body: SetSecretBody = _parse(SetSecretBody, raw)
        if len(body.value.encode()) > MAX_VALUE_BYTES:
            raise KeyVaultError(400, "BadParameter", "The secret value exceeds 25 KB.")
        _check_content_type(body.content_type)
        _check_tags(body.tags)
        now = int(time.time())
        attributes = body.attributes or AttributesIn()
        version = SecretVersion(
            version=os.urandom(16).hex(),
            value=body.value,
            content_type=body.content_type,
            tags=dict(body.tags or {}),
            enabled=True if attributes.enabled is None else attributes.enabled,
            not_before=attributes.nbf,
            expires=attributes.exp,
            created=now,
            updated=now,
        )
        with self.store.change() as data:
            vault = self._vault(data)
            if name.lower() in vault.deleted:
                raise KeyVaultError(
                    409,
                    "Conflict",
                    f"Secret {name} is currently in a deleted but recoverable state, and its name "
                    "cannot be reused; in this state, the secret can only be recovered or purged.",
                )
            record = vault.secrets.setdefault(name.lower(), SecretRecord(name=name))
            record.versions.append(version)
            return JSONResponse(_bundle(self._base(request), record, version, with_value=True))

    def _find(
        self, data: Any, name: str, version_id: str | None
    ) -> tuple[SecretRecord, SecretVersion]:
        """The secret and the version asked for (the latest without one), or a 404."""
        record = self._vault(data).secrets.get(name.lower())
        if record is None:
            raise _not_found(name)
        version = record.version(version_id) if version_id else record.latest
        if version is None:
            raise _not_found(name, version_id)
        return record, version

    def _get(self, request: Request, name: str, version_id: str | None) -> Response:
        with self.store.read() as data:
            record, version = self._find(data, name, version_id)
            if not version.enabled:
                # Exactly Key Vault's answer to a GET of a disabled version (latest or named).
                raise KeyVaultError(
                    403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                    inner="SecretDisabled",
                )
            return JSONResponse(_bundle(self._base(request), record, version, with_value=True))

    def _update(self, request: Request, name: str, version_id: str | None, raw: bytes) -> Response:
        body: UpdateSecretBody = _parse(UpdateSecretBody, raw)
        _check_content_type(body.content_type)
        _check_tags(body.tags)
        with self.store.change() as data:
            record, version = self._find(data, name, version_id)
            # PATCH semantics as Key Vault has them: what is sent replaces, what is absent stays;
            # tags are replaced as a whole map, not merged.
            if body.tags is not None:
                version.tags = dict(body.tags)
            if body.content_type is not None:
                version.content_type = body.content_type
            if body.attributes is not None:
                if body.attributes.enabled is not None:
                    version.enabled = body.attributes.enabled
                if body.attributes.nbf is not None:
                    version.not_before = body.attributes.nbf
                if body.attributes.exp is not None:
                    version.expires = body.attributes.exp
            version.updated = int(time.time())
            return JSONResponse(_bundle(self._base(request), record, version, with_value=False))

    def _delete(self, request: Request, name: str) -> Response:
        with self.store.change() as data:
            vault = self._vault(data)
            record = vault.secrets.pop(name.lower(), None)
            if record is None:
                raise _not_found(name)
            record.deleted_on = int(time.time())
            vault.deleted[name.lower()] = record
            return JSONResponse(_deleted_bundle(self._base(request), record))

    async def list_secrets(self, request: Request) -> Response:
        base = self._base(request)
        try:
            with self.store.read() as data:
                records = sorted(self._vault(data).secrets.values(), key=lambda r: r.name.lower())
                items = []
                for record in records:
                    item = _bundle(base, record, record.latest, with_value=False)
                    item["id"] = f"{base}/secrets/{record.name}"  # items carry no version
                    items.append(item)
            return _page(request, base, items)
        except KeyVaultError as error:
            return _error(error)

    async def list_versions(self, request: Request) -> Response:
        name = request.path_params["name"]
        base = self._base(request)
        try:
            with self.store.read() as data:
                record = self._vault(data).secrets.get(name.lower())
                if record is None:
                    raise _not_found(name)
                # Azure lists versions in no set order: by id here (random hex), never by
                # creation, so that code relying on the order fails here as it would there.
                items = [_bundle(base, record, v, with_value=False)
                         for v in sorted(record.versions, key=lambda v: v.version)]
            return _page(request, base, items)
        except KeyVaultError as error:
            return _error(error)

    async def list_deleted(self, request: Request) -> Response:
        base = self._base(request)
        try:
            with self.store.read() as data:
                records = sorted(self._vault(data).deleted.values(), key=lambda r: r.name.lower())
                items = [_deleted_bundle(base, record) for record in records]
            return _page(request, base, items)
        except KeyVaultError as error:
            return _error(error)

    async def deleted_secret(self, request: Request) -> Response:
        name = request.path_params["name"]
        with self.store.change() as data:
            vault = self._vault(data)
            record = vault.deleted.get(name.lower())
            if record is None:
                return _error(
                    KeyVaultError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
                )
            if request.method == "DELETE":  # purge
                del vault.deleted[name.lower()]
                return Response(status_code=204)
            return JSONResponse(_deleted_bundle(self._base(request), record))

    async def recover(self, request: Request) -> Response:
        name = request.path_params["name"]
        with self.store.change() as data:
            vault = self._vault(data)
            record = vault.deleted.pop(name.lower(), None)
            if record is None:
                return _error(
                    KeyVaultError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
                )
            record.deleted_on = None
            vault.secrets[name.lower()] = record
            return JSONResponse(
                _bundle(self._base(request), record, record.latest, with_value=False)
            )


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _error(error: KeyVaultError) -> JSONResponse:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.inner:
        body["innererror"] = {"code": error.inner}
    return JSONResponse({"error": body}, status_code=error.status)


_ACTIONS = {"GET": "getSecret", "PUT": "setSecret", "PATCH": "update", "DELETE": "delete"}


def _rbac_denied(request: Request, vault: str, principal: str) -> JSONResponse:
    """Key Vault's answer when the caller holds no role assignment allowing the data action."""
    parts = request.url.path.strip("/").split("/")
    secret = parts[1] if len(parts) > 1 else ""
    action = _ACTIONS.get(request.method, "readMetadata")
    if request.method == "GET" and (len(parts) < 2 or parts[-1] == "versions"):
        action = "readMetadata"
    message = (
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
        "assignments or role definitions were changed recently, please observe propagation "
        f"time.\r\nCaller: oid={principal}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/"
        f"{action}/action'\r\nResource: '/vaults/{vault.lower()}/secrets/{secret.lower()}'"
        "\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null"
        f" \r\nVault: {vault.lower()};location=local\r\n"
    )
    return _error(KeyVaultError(403, "Forbidden", message, inner="ForbiddenByRbac"))


def vault_asgi(store: StateStore, vault_name: str, tenant_id: str,
               extra: Sequence[Callable[[VaultApp], list[Route]]] = ()) -> Any:
    """The ASGI app serving one vault (secrets, and the `extra` object types' routes)."""
    return VaultApp(store, vault_name, tenant_id, extra).build()
