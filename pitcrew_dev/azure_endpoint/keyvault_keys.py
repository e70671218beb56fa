"""Key Vault keys REST API (7.x shapes) on each local vault: what pitcrew and its tests call.

    GET  /keys                          list (KeyItem: version-less kid, attributes, tags)
    GET  /keys/{name}/versions          list a key's versions
    GET  /keys/{name}[/{version}]       get (public part only: no private material exists here)
    POST /keys/{name}/create            create (kty RSA, RSA-HSM, EC, EC-HSM)
    POST /keys/{name}/rotate            rotate: a new version by the rotation policy
    GET  /keys/{name}/rotationpolicy    the policy (Key Vault's default when none was set)
    PUT  /keys/{name}/rotationpolicy    set it, validated like Key Vault (expiryTime >= P28D,
                                        triggers >= P7D, one trigger per action, ...)

Errors are Key Vault's: 404 KeyNotFound, 400 BadParameter naming what is wrong.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pitcrew_dev.azure_endpoint.keyvault import (
    SECRET_NAME,
    AttributesIn,
    KeyVaultError,
    VaultApp,
    _check_tags,
    _error,
    _page,
    _parse,
)
from pitcrew_dev.azure_endpoint.keyvault import (
    _attributes as vault_attributes,
)
from pitcrew_dev.azure_endpoint.state import KeyRecord, KeyVersion, public_modulus

KTYS = ("RSA", "RSA-HSM", "EC", "EC-HSM", "oct-HSM")
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")
DEFAULT_POLICY_ACTIONS = [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}]


class CreateKeyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kty: str
    key_size: int | None = None
    crv: str | None = None
    key_ops: list[str] | None = None
    attributes: AttributesIn | None = None
    tags: dict[str, str] | None = None


class RotationPolicyBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    lifetime_actions: list[dict[str, Any]] | None = Field(default=None, alias="lifetimeActions")
    attributes: dict[str, Any] | None = None


def days_of(text: Any, where: str) -> int:
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise KeyVaultError(400, "BadParameter",
                            f"{where}: {str(text)[:40]!r} is not an ISO 8601 duration (P90D).")
    years, months, weeks, days = (int(g or 0) for g in match.groups())
    return years * 365 + months * 30 + weeks * 7 + days


def check_policy(body: RotationPolicyBody) -> dict[str, Any]:
    """The policy as stored, or Key Vault's 400 for what it refuses."""
    attributes = body.attributes or {}
    expiry = attributes.get("expiryTime")
    expiry_days = days_of(expiry, "expiryTime") if expiry is not None else None
    if expiry_days is not None and not 28 <= expiry_days <= 36500:
        raise KeyVaultError(400, "BadParameter",
                            "expiryTime must be at least P28D and at most P100Y.")
    seen: set[str] = set()
    actions = []
    for i, raw in enumerate(body.lifetime_actions or []):
        trigger = raw.get("trigger") or {}
        kind = str((raw.get("action") or {}).get("type") or "")
        if kind.lower() not in ("rotate", "notify"):
            raise KeyVaultError(400, "BadParameter",
                                f"lifetimeActions[{i}].action.type must be Rotate or Notify.")
        if kind.lower() in seen:
            raise KeyVaultError(400, "BadParameter", f"Only one {kind} action is allowed.")
        seen.add(kind.lower())
        before, after = trigger.get("timeBeforeExpiry"), trigger.get("timeAfterCreate")
        if (before is None) == (after is None):
            raise KeyVaultError(400, "BadParameter", f"lifetimeActions[{i}].trigger needs "
                                "exactly one of timeAfterCreate or timeBeforeExpiry.")
        if kind.lower() == "notify" and before is None:
            raise KeyVaultError(400, "BadParameter",
                                "A Notify action's trigger must be timeBeforeExpiry.")
        days = days_of(before if before is not None else after, f"lifetimeActions[{i}].trigger")
        if days < 7:
            raise KeyVaultError(400, "BadParameter",
                                f"lifetimeActions[{i}].trigger must be at least P7D.")
        if before is not None:
            if expiry_days is None:
                raise KeyVaultError(400, "BadParameter", "timeBeforeExpiry needs an expiryTime "
                                    "in the policy's attributes.")
            if days > expiry_days - 7:
                raise KeyVaultError(400, "BadParameter", "timeBeforeExpiry must be at least "
                                    "P7D shorter than expiryTime.")
        actions.append({"trigger": dict(trigger), "action": {"type": kind.capitalize()}})
    stored_attributes: dict[str, Any] = {}
    if expiry is not None:
        stored_attributes["expiryTime"] = expiry.strip().upper()
    return {"lifetimeActions": actions, "attributes": stored_attributes}


def _not_found(name: str, version: str | None = None) -> KeyVaultError:
    what = f"{name}/{version}" if version else name
    return KeyVaultError(404, "KeyNotFound",
                         f"A key with (name/id) {what} was not found in this key vault.")


def _check_name(name: str) -> None:
    if not SECRET_NAME.match(name):
        raise KeyVaultError(400, "BadParameter",
                            f"The key name {name[:130]!r} is invalid: 1-127 letters, digits "
                            "and hyphens.")


def _attributes(version: KeyVersion) -> dict[str, Any]:
    return vault_attributes(version, exportable=False)


def _bundle(base: str, record: KeyRecord, version: KeyVersion) -> dict[str, Any]:
    return {"key": {"kid": f"{base}/keys/{record.name}/{version.version}", "kty": version.kty,
                    "key_ops": list(version.key_ops), "n": version.n, "e": "AQAB"},
            "attributes": _attributes(version), "tags": dict(version.tags)}


class KeysRoutes:
    def __init__(self, vault: VaultApp) -> None:
        self.vault = vault

    def routes(self) -> list[Route]:
        return [
            Route("/keys", self.list_keys, methods=["GET"]),
            Route("/keys/", self.list_keys, methods=["GET"]),
            Route("/keys/{name}/versions", self.list_versions, methods=["GET"]),
            Route("/keys/{name}/create", self.create, methods=["POST"]),
            Route("/keys/{name}/rotate", self.rotate, methods=["POST"]),
            Route("/keys/{name}/rotationpolicy", self.policy, methods=["GET", "PUT"]),
            Route("/keys/{name}", self.get, methods=["GET"]),
            Route("/keys/{name}/", self.get, methods=["GET"]),
            Route("/keys/{name}/{version}", self.get, methods=["GET"]),
        ]

    def _record(self, data: Any, name: str) -> KeyRecord:
        _check_name(name)
        record: KeyRecord | None = self.vault._vault(data).keys.get(name.lower())
        if record is None:
            raise _not_found(name)
        return record

    async def list_keys(self, request: Request) -> Response:
        base = self.vault._base(request)
        try:
            with self.vault.store.read() as data:
                records = sorted(self.vault._vault(data).keys.values(),
                                 key=lambda r: r.name.lower())
                items = [{"kid": f"{base}/keys/{r.name}", "attributes": _attributes(r.latest),
                          "tags": dict(r.latest.tags)} for r in records]
            return _page(request, base, items)
        except KeyVaultError as error:
            return _error(error)

    async def list_versions(self, request: Request) -> Response:
        base = self.vault._base(request)
        try:
            with self.vault.store.read() as data:
                record = self._record(data, request.path_params["name"])
                items = [{"kid": f"{base}/keys/{record.name}/{v.version}",
                          "attributes": _attributes(v), "tags": dict(v.tags)}
                         for v in record.versions]
            return _page(request, base, items)
        except KeyVaultError as error:
            return _error(error)

    async def get(self, request: Request) -> Response:
        name = request.path_params["name"]
        wanted = request.path_params.get("version") or None
        try:
            with self.vault.store.read() as data:
                record = self._record(data, name)
                version = (next((v for v in record.versions if v.version == wanted.lower()),
                                None) if wanted else record.latest)
                if version is None:
                    raise _not_found(name, wanted)
                return JSONResponse(_bundle(self.vault._base(request), record, version))
        except KeyVaultError as error:
            return _error(error)

    async def create(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            _check_name(name)
            body: CreateKeyBody = _parse(CreateKeyBody, await request.body())
            if body.kty not in KTYS:
                raise KeyVaultError(400, "BadParameter",
                                    f"Invalid kty {body.kty[:20]!r}: one of {', '.join(KTYS)}.")
            _check_tags(body.tags)
            now = int(time.time())
            attributes = body.attributes or AttributesIn()
            version = KeyVersion(
                version=os.urandom(16).hex(), kty=body.kty, n=public_modulus(),
                key_ops=body.key_ops or ["sign", "verify", "wrapKey", "unwrapKey", "encrypt",
                                         "decrypt"],
                tags=dict(body.tags or {}),
                enabled=True if attributes.enabled is None else attributes.enabled,
                not_before=attributes.nbf, expires=attributes.exp, created=now, updated=now)
            with self.vault.store.change() as data:
                keys = self.vault._vault(data).keys
                record = keys.setdefault(name.lower(), KeyRecord(name=name))
                record.versions.append(version)
                return JSONResponse(_bundle(self.vault._base(request), record, version))
        except KeyVaultError as error:
            return _error(error)

    async def rotate(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            now = int(time.time())
            with self.vault.store.change() as data:
                record = self._record(data, name)
                latest = record.latest
                policy = record.rotation_policy or {}
                expiry = (policy.get("attributes") or {}).get("expiryTime")
                version = KeyVersion(
                    version=os.urandom(16).hex(), kty=latest.kty, n=public_modulus(),
                    key_ops=list(latest.key_ops), tags=dict(latest.tags),
                    expires=now + days_of(expiry, "expiryTime") * 86400 if expiry else None,
                    created=now, updated=now)
                record.versions.append(version)
                record.rotations += 1
                return JSONResponse(_bundle(self.vault._base(request), record, version))
        except KeyVaultError as error:
            return _error(error)

    async def policy(self, request: Request) -> Response:
        name = request.path_params["name"]
        base = self.vault._base(request)
        try:
            if request.method == "PUT":
                stored = check_policy(_parse(RotationPolicyBody, await request.body()))
                now = int(time.time())
                with self.vault.store.change() as data:
                    record = self._record(data, name)
                    created = ((record.rotation_policy or {}).get("attributes") or {}).get(
                        "created", now)
                    stored["attributes"].update(created=created, updated=now)
                    record.rotation_policy = stored
            with self.vault.store.read() as data:
                record = self._record(data, name)
                policy = record.rotation_policy or {
                    "lifetimeActions": DEFAULT_POLICY_ACTIONS, "attributes": {}}
                return JSONResponse({"id": f"{base}/keys/{record.name}/rotationpolicy",
                                     **policy})
        except KeyVaultError as error:
            return _error(error)


def key_routes(vault: VaultApp) -> list[Route]:
    return KeysRoutes(vault).routes()
