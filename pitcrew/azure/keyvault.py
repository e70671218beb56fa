"""Key Vault secrets: the SecretStore port over azure-keyvault-secrets (one client per vault)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pitcrew.rotation.ports import SecretVersion


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
    )


class KeyVaultSecretStore:
    """SecretStore over Key Vault. `client_for(vault)` returns a cached SecretClient."""

    def __init__(self, client_for: Callable[[str], Any]) -> None:
        self._client_for = client_for

    def latest(self, vault: str, name: str) -> SecretVersion | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            secret = self._client_for(vault).get_secret(name)
        except ResourceNotFoundError:
            return None
        return _version(secret)

    def set(
        self, vault: str, name: str, value: str, *, tags: Mapping[str, str],
        expires_on: datetime | None, content_type: str | None = None,
    ) -> SecretVersion:
        secret = self._client_for(vault).set_secret(
            name, value, tags=dict(tags), expires_on=expires_on, content_type=content_type
        )
        return _version(secret, with_value=False)

    def disable(self, vault: str, name: str, version: str) -> None:
        self._client_for(vault).update_secret_properties(name, version, enabled=False)
