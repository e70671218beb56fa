"""Key Vault secrets: the SecretStore port over azure-keyvault-secrets (one client per vault).

Key Vault's answers the engine must tell apart, mapped here so the engine never parses HTTP:

- 404 `SecretNotFound`: no such secret (None from `latest`).
- 403 `Forbidden` with inner error `SecretDisabled` ("Operation get is not allowed on a disabled
  secret."): the version exists but is disabled; `latest` returns it with `enabled=False` and no
  value, read from the version list.
- any other 403 (`ForbiddenByRbac`, `ForbiddenByPolicy`, a firewall) or 401: pitcrew's identity
  may not do this on the vault -> VaultUnavailable naming the role it lacks.
- a vault name that does not resolve (or, locally, that the endpoint does not serve) ->
  VaultUnavailable("unknown").
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from pitcrew.errors import ConfigurationError
from pitcrew.housekeeping.ports import ObjectKind, ObjectProperties
from pitcrew.rotation.ports import SecretVersion, VaultUnavailable

# The built-in role that grants every operation pitcrew performs on secrets (get, set, update).
SECRETS_ROLE = "Key Vault Secrets Officer"


def _version(secret: Any, *, with_value: bool = True) -> SecretVersion:
    props = secret.properties
    return SecretVersion(
        name=props.name,
        version=props.version,
        value=secret.value if with_value else None,
        tags=dict(props.tags or {}),
        expires_on=props.expires_on,
        created_on=props.created_on,
        enabled=bool(props.enabled),
        content_type=getattr(props, "content_type", None),
    )


def _from_properties(props: Any) -> SecretVersion:
    return SecretVersion(
        name=props.name, version=props.version, value=None, tags=dict(props.tags or {}),
        expires_on=props.expires_on, created_on=props.created_on, enabled=bool(props.enabled),
        content_type=getattr(props, "content_type", None),
    )


def error_codes(exc: Any) -> tuple[str, str]:
    """(code, inner code) of a Key Vault error answer, '' where absent."""
    body: Any = None
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            body = json.loads(response.text())
        except Exception:  # a body that is not JSON has no codes
            body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        model = getattr(exc, "error", None)
        code = str(getattr(model, "code", "") or "")
        inner = getattr(model, "innererror", None) or {}
        return code, str(inner.get("code", "") if isinstance(inner, dict) else "")
    inner = error.get("innererror") or {}
    return str(error.get("code") or ""), str(inner.get("code", "") if isinstance(inner, dict)
                                            else "")


def is_disabled(exc: Any) -> bool:
    """Key Vault's answer to reading a disabled version."""
    code, inner = error_codes(exc)
    if inner == "SecretDisabled":
        return True
    return code == "Forbidden" and "disabled secret" in str(getattr(exc, "message", exc))


def _unresolvable(exc: BaseException) -> bool:
    """A host name that does not resolve: no such vault. azure-core's requests transport
    raises its ServiceRequestError outside the `except`, so the chain is often empty and
    the transport's error is in `inner_exception`; the message is the last resort."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, socket.gaierror):
            return seen.errno != socket.EAI_AGAIN  # that one is DNS failing, not no such name
        inner = getattr(seen, "inner_exception", None)
        seen = seen.__cause__ or seen.__context__ or (
            inner if isinstance(inner, BaseException) and inner is not seen else None)
    text = str(exc)
    return any(marker in text for marker in (
        "Name or service not known", "getaddrinfo failed", "nodename nor servname"))


@contextmanager
def access(vault: str, operation: str, name: str, *, role: str = SECRETS_ROLE,
           kind: str = "secret") -> Iterator[None]:
    """Turn 'cannot reach / may not use this vault' into VaultUnavailable (naming `role`)."""
    from azure.core.exceptions import (  # SDK on first use (cold start)
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    try:
        yield
    except ConfigurationError as exc:
        raise VaultUnavailable(vault, "unknown", role, str(exc)) from None
    except ServiceRequestError as exc:
        if _unresolvable(exc):
            raise VaultUnavailable(
                vault, "unknown", role,
                f"https://{vault}.vault.azure.net does not resolve") from None
        raise
    except ResourceNotFoundError:
        raise
    except (ClientAuthenticationError, HttpResponseError) as exc:
        status = getattr(exc, "status_code", None)
        if status in (401, 403) and not is_disabled(exc):
            code, inner = error_codes(exc)
            why = "/".join(c for c in (code, inner) if c) or f"HTTP {status}"
            raise VaultUnavailable(
                vault, "forbidden", role,
                f"Key Vault answered {status} {why} to {operation} {kind} {name}",
            ) from None
        raise


def properties_of(props: Any, vault: str, kind: ObjectKind) -> ObjectProperties:
    """A listing item (SecretProperties, KeyProperties, CertificateProperties) as plain data."""
    return ObjectProperties(
        kind=kind, vault=vault, name=props.name, enabled=bool(props.enabled),
        expires_on=props.expires_on, created_on=props.created_on,
        updated_on=props.updated_on, version=props.version, tags=dict(props.tags or {}),
        content_type=getattr(props, "content_type", None),
        managed=bool(getattr(props, "managed", False)),
    )


class VaultObjectStore:
    """What the key and certificate stores share: one cached client per vault
    (`client_for(vault)`), access errors naming `role`, and an object kind's listing and
    latest version, read with the client methods a subclass names."""

    kind: ObjectKind
    role: str
    list_method: str  # e.g. "list_properties_of_keys"
    get_method: str  # e.g. "get_key"

    def __init__(self, client_for: Callable[[str], Any]) -> None:
        self._client_for = client_for

    def _access(self, vault: str, operation: str, name: str,
                kind: str | None = None) -> AbstractContextManager[None]:
        return access(vault, operation, name, role=self.role, kind=kind or self.kind)

    def list_properties(self, vault: str) -> Iterator[ObjectProperties]:
        with self._access(vault, "list", "*"):
            for props in getattr(self._client_for(vault), self.list_method)():
                yield properties_of(props, vault, self.kind)

    def latest_version(self, vault: str, name: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use

        with self._access(vault, "get", name):
            try:
                found = getattr(self._client_for(vault), self.get_method)(name)
            except ResourceNotFoundError:
                return None
            return str(found.properties.version)


class KeyVaultSecretStore:
    """SecretStore over Key Vault. `client_for(vault)` returns a cached SecretClient."""

    def __init__(self, client_for: Callable[[str], Any]) -> None:
        self._client_for = client_for

    @contextmanager
    def _access(self, vault: str, operation: str, name: str) -> Iterator[None]:
        with access(vault, operation, name):
            yield

    def latest(self, vault: str, name: str) -> SecretVersion | None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        with self._access(vault, "get", name):
            client = self._client_for(vault)
            try:
                secret = client.get_secret(name)
            except ResourceNotFoundError:
                return None
            except HttpResponseError as exc:
                if exc.status_code == 403 and is_disabled(exc):
                    return self._latest_disabled(client, name)
                raise
        return _version(secret)

    @staticmethod
    def _latest_disabled(client: Any, name: str) -> SecretVersion:
        """The disabled current version, from the version list (its value cannot be read).
        The newest by creation time; among equals, the disabled one listed last."""
        versions = list(client.list_properties_of_secret_versions(name))
        disabled = [v for v in versions if not v.enabled] or versions
        if not disabled:
            return SecretVersion(name=name, version="", value=None, enabled=False)
        newest = max(v.created_on for v in disabled if v.created_on) if any(
            v.created_on for v in disabled) else None
        candidates = [v for v in disabled if v.created_on == newest] or disabled
        return _from_properties(candidates[-1])

    def set(
        self, vault: str, name: str, value: str, *, tags: Mapping[str, str],
        expires_on: datetime | None, content_type: str | None = None,
    ) -> SecretVersion:
        with self._access(vault, "set", name):
            secret = self._client_for(vault).set_secret(
                name, value, tags=dict(tags), expires_on=expires_on, content_type=content_type
            )
        return _version(secret, with_value=False)

    def disable(self, vault: str, name: str, version: str) -> None:
        with self._access(vault, "update", name):
            self._client_for(vault).update_secret_properties(name, version, enabled=False)

    def versions(self, vault: str, name: str) -> list[SecretVersion]:
        """Every version's properties (no values), in the order Key Vault lists them."""
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        with self._access(vault, "list", name):
            try:
                return [_from_properties(p) for p in
                        self._client_for(vault).list_properties_of_secret_versions(name)]
            except ResourceNotFoundError:
                return []

    def get(self, vault: str, name: str, version: str) -> SecretVersion | None:
        """One version with its value; None when it does not exist or is disabled."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        with self._access(vault, "get", name):
            try:
                return _version(self._client_for(vault).get_secret(name, version))
            except ResourceNotFoundError:
                return None
            except HttpResponseError as exc:
                if exc.status_code == 403 and is_disabled(exc):
                    return None
                raise

    def list_properties(self, vault: str) -> Iterator[ObjectProperties]:
        """Every secret's current properties, never a value (SecretListing)."""
        with self._access(vault, "list", "*"):
            for props in self._client_for(vault).list_properties_of_secrets():
                yield properties_of(props, vault, "secret")
