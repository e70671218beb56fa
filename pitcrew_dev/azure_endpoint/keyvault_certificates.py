"""Key Vault certificates REST API (7.x shapes) on each local vault: what pitcrew calls.

    GET  /certificates                      list (CertificateItem: version-less id, x5t, ...)
    GET  /certificates/{name}[/{version}]   get (a made-up `cer`: pitcrew never reads it)
    GET  /certificates/{name}/policy        the policy (issuer, lifetime actions, x509 props)
    POST /certificates/{name}/create        202 and a pending operation (status inProgress)
    GET  /certificates/{name}/pending       the pending operation; 404 when there is none
    GET  /certificates/issuers/{issuer}     an issuer configured in the vault (its provider)

A create for issuer Self or a configured issuer completes on the next poll of `pending` (a new
version, valid for the policy's validity_months); for issuer Unknown it stays inProgress until
merged, as in Key Vault. A create while another is in progress is 409 Conflict; a create naming
an issuer the vault does not know is 400 BadParameter.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pitcrew_dev.azure_endpoint.keyvault import (
    SECRET_NAME,
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
from pitcrew_dev.azure_endpoint.state import CertificateRecord, CertificateVersion

MONTH = 30 * 86400


class CreateCertificateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    policy: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None
    tags: dict[str, str] | None = None


def _check_name(name: str) -> None:
    if not SECRET_NAME.match(name):
        raise KeyVaultError(400, "BadParameter", f"The certificate name {name[:130]!r} is "
                            "invalid: 1-127 letters, digits and hyphens.")


def _not_found(name: str, version: str | None = None) -> KeyVaultError:
    what = f"{name}/{version}" if version else name
    return KeyVaultError(404, "CertificateNotFound",
                         f"A certificate with (name/id) {what} was not found in this key vault.")


def _cer(record: CertificateRecord, version: CertificateVersion) -> bytes:
    return hashlib.sha512(f"{record.name}/{version.version}".encode()).digest()


def _x5t(record: CertificateRecord, version: CertificateVersion) -> str:
    digest = hashlib.sha1(_cer(record, version)).digest()  # noqa: S324 (a thumbprint, as x5t is)
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _attributes(version: CertificateVersion) -> dict[str, Any]:
    return vault_attributes(version)


def _policy_json(base: str, record: CertificateRecord) -> dict[str, Any]:
    return {"id": f"{base}/certificates/{record.name}/policy", **record.policy}


def _bundle(base: str, record: CertificateRecord, version: CertificateVersion) -> dict[str, Any]:
    return {"id": f"{base}/certificates/{record.name}/{version.version}",
            "kid": f"{base}/keys/{record.name}/{version.version}",
            "sid": f"{base}/secrets/{record.name}/{version.version}",
            "x5t": _x5t(record, version),
            "cer": base64.b64encode(_cer(record, version)).decode(),
            "attributes": _attributes(version), "tags": dict(version.tags),
            "policy": _policy_json(base, record)}


def _operation(base: str, record: CertificateRecord) -> dict[str, Any]:
    assert record.pending is not None
    op = {"id": f"{base}/certificates/{record.name}/pending", **record.pending}
    if op.get("status") == "completed":
        op["target"] = f"{base}/certificates/{record.name}"
    return op


class CertificatesRoutes:
    def __init__(self, vault: VaultApp) -> None:
        self.vault = vault

    def routes(self) -> list[Route]:
        return [
            Route("/certificates", self.list_certificates, methods=["GET"]),
            Route("/certificates/", self.list_certificates, methods=["GET"]),
            Route("/certificates/issuers/{issuer}", self.issuer, methods=["GET"]),
            Route("/certificates/{name}/versions", self.list_versions, methods=["GET"]),
            Route("/certificates/{name}/policy", self.policy, methods=["GET"]),
            Route("/certificates/{name}/create", self.create, methods=["POST"]),
            Route("/certificates/{name}/pending", self.pending, methods=["GET"]),
            Route("/certificates/{name}", self.get, methods=["GET"]),
            Route("/certificates/{name}/", self.get, methods=["GET"]),
            Route("/certificates/{name}/{version}", self.get, methods=["GET"]),
        ]

    def _record(self, data: Any, name: str) -> CertificateRecord:
        _check_name(name)
        record: CertificateRecord | None = self.vault._vault(data).certificates.get(name.lower())
        if record is None or not record.versions:
            raise _not_found(name)
        return record

    async def list_certificates(self, request: Request) -> Response:
        base = self.vault._base(request)
        try:
            with self.vault.store.read() as data:
                records = sorted((r for r in self.vault._vault(data).certificates.values()
                                  if r.versions), key=lambda r: r.name.lower())
                items = [{"id": f"{base}/certificates/{r.name}", "x5t": _x5t(r, r.latest),
                          "attributes": _attributes(r.latest), "tags": dict(r.latest.tags)}
                         for r in records]
            return _page(request, base, items)
        except KeyVaultError as error:
            return _error(error)

    async def list_versions(self, request: Request) -> Response:
        base = self.vault._base(request)
        try:
            with self.vault.store.read() as data:
                record = self._record(data, request.path_params["name"])
                items = [{"id": f"{base}/certificates/{record.name}/{v.version}",
                          "x5t": _x5t(record, v), "attributes": _attributes(v),
                          "tags": dict(v.tags)} for v in record.versions]
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

    async def policy(self, request: Request) -> Response:
        try:
            with self.vault.store.read() as data:
                record = self._record(data, request.path_params["name"])
                return JSONResponse(_policy_json(self.vault._base(request), record))
        except KeyVaultError as error:
            return _error(error)

    async def issuer(self, request: Request) -> Response:
        issuer = request.path_params["issuer"]
        with self.vault.store.read() as data:
            provider = self.vault._vault(data).issuers.get(issuer)
        if provider is None:
            return _error(KeyVaultError(404, "CertificateIssuerNotFound",
                                        f"Issuer not found: {issuer[:130]}"))
        base = self.vault._base(request)
        return JSONResponse({"id": f"{base}/certificates/issuers/{issuer}",
                             "provider": provider, "attributes": {"enabled": True}})

    async def create(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            _check_name(name)
            body: CreateCertificateBody = _parse(CreateCertificateBody, await request.body())
            _check_tags(body.tags)
            policy = dict(body.policy or {})
            issuer = str((policy.get("issuer") or {}).get("name") or "")
            if not issuer:
                raise KeyVaultError(400, "BadParameter", "The policy must name an issuer.")
            months = (policy.get("x509_props") or {}).get("validity_months") or 12
            if not isinstance(months, int) or not 1 <= months <= 1200:
                raise KeyVaultError(400, "BadParameter", "validity_months must be 1-1200.")
            policy.pop("id", None)
            now = int(time.time())
            with self.vault.store.change() as data:
                vault = self.vault._vault(data)
                if issuer.lower() not in ("self", "unknown") and issuer not in vault.issuers:
                    raise KeyVaultError(400, "BadParameter", f"Issuer not found: {issuer}")
                record = vault.certificates.setdefault(name.lower(),
                                                       CertificateRecord(name=name))
                if record.pending and record.pending.get("status") == "inProgress":
                    raise KeyVaultError(409, "Conflict", f"There is a pending certificate "
                                        f"operation for {name}; wait for it or delete it.")
                record.policy = {**policy, "attributes": {
                    **(policy.get("attributes") or {}), "created": now, "updated": now}}
                record.creations += 1
                record.pending = {
                    "issuer": {"name": issuer}, "status": "inProgress",
                    "cancellation_requested": False,
                    "csr": base64.b64encode(os.urandom(64)).decode(),
                    "request_id": os.urandom(16).hex(),
                    "status_details": ("Pending certificate created. Please Perform Merge to "
                                       "complete the request.") if issuer.lower() == "unknown"
                    else "Pending certificate created. Certificate request is in progress.",
                    "_tags": dict(body.tags or {}), "_months": months,
                }
                return JSONResponse(_public(_operation(self.vault._base(request), record)),
                                    status_code=202)
        except KeyVaultError as error:
            return _error(error)

    async def pending(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            _check_name(name)
            now = int(time.time())
            with self.vault.store.change() as data:
                record = self.vault._vault(data).certificates.get(name.lower())
                if record is None or record.pending is None:
                    raise KeyVaultError(404, "PendingCertificateNotFound",
                                        f"Pending certificate not found: {name}")
                op = record.pending
                issuer = str(op["issuer"]["name"])
                if op["status"] == "inProgress" and issuer.lower() != "unknown":
                    # The CA (or Key Vault itself, for Self) answered: a new version.
                    record.versions.append(CertificateVersion(
                        version=os.urandom(16).hex(), tags=dict(op.get("_tags") or {}),
                        not_before=now, expires=now + int(op.get("_months") or 12) * MONTH,
                        created=now, updated=now))
                    op["status"] = "completed"
                    op["status_details"] = ""
                return JSONResponse(_public(_operation(self.vault._base(request), record)))
        except KeyVaultError as error:
            return _error(error)


def _public(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in op.items() if not k.startswith("_")}


def certificate_routes(vault: VaultApp) -> list[Route]:
    return CertificatesRoutes(vault).routes()
