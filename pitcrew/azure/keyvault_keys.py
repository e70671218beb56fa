"""Key Vault keys: the KeyStore port (pitcrew.housekeeping.ports) over azure-keyvault-keys.

Properties, the rotate operation and rotation policies only: pitcrew never reads or uses a key's
material. Rotation policies are ISO 8601 durations in Key Vault ("P90D"); the port speaks days.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pitcrew.azure.keyvault import VaultObjectStore, properties_of
from pitcrew.housekeeping.ports import KeyRotationPolicy, ObjectProperties

if TYPE_CHECKING:
    from pitcrew.runtime import Runtime

# The built-in role that grants list, get, rotate and rotation policy get/set on keys.
KEYS_ROLE = "Key Vault Crypto Officer"
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")


def duration_days(text: str | None) -> int | None:
    """Days in a Key Vault duration (P90D, P3M, P1Y, P2W); None when absent or not days-based."""
    match = _DURATION.match((text or "").strip().upper())
    if not text or not match or not any(match.groups()):
        return None
    years, months, weeks, days = (int(g or 0) for g in match.groups())
    return years * 365 + months * 30 + weeks * 7 + days


def days_duration(days: int | None) -> str | None:
    return f"P{days}D" if days is not None else None


def key_client_for(runtime: Runtime) -> Callable[[str], Any]:
    """A cached KeyClient per vault, pointed like the SecretClient (local endpoint included)."""
    return lambda vault: runtime.vault_client(vault, "azure.keyvault.keys", "KeyClient")


class KeyVaultKeyStore(VaultObjectStore):
    """KeyStore over Key Vault. `client_for(vault)` returns a cached KeyClient."""

    kind, role, list_method, get_method = "key", KEYS_ROLE, "list_properties_of_keys", "get_key"

    def rotate(self, vault: str, name: str) -> ObjectProperties:
        with self._access(vault, "rotate", name):
            key = self._client_for(vault).rotate_key(name)
        return properties_of(key.properties, vault, "key")

    def rotation_policy(self, vault: str, name: str) -> KeyRotationPolicy | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use

        with self._access(vault, "getRotationPolicy", name):
            try:
                policy = self._client_for(vault).get_key_rotation_policy(name)
            except ResourceNotFoundError:
                return None
        found: dict[str, int | None] = {}
        for action in policy.lifetime_actions or ():
            kind = str(getattr(action.action, "value", action.action)).lower()
            if kind == "rotate":
                found["rotate_before_expiry_days"] = duration_days(action.time_before_expiry)
                found["rotate_after_create_days"] = duration_days(action.time_after_create)
            elif kind == "notify":
                found["notify_before_expiry_days"] = duration_days(action.time_before_expiry)
        return KeyRotationPolicy(expires_in_days=duration_days(policy.expires_in), **found)

    def set_rotation_policy(self, vault: str, name: str, policy: KeyRotationPolicy) -> None:
        from azure.keyvault.keys import (  # SDK on first use
            KeyRotationLifetimeAction,
            KeyRotationPolicyAction,
        )
        from azure.keyvault.keys import KeyRotationPolicy as SdkPolicy

        actions = []
        if policy.rotate_before_expiry_days is not None or policy.rotate_after_create_days:
            actions.append(KeyRotationLifetimeAction(
                KeyRotationPolicyAction.rotate,
                time_before_expiry=days_duration(policy.rotate_before_expiry_days),
                time_after_create=days_duration(policy.rotate_after_create_days)))
        if policy.notify_before_expiry_days is not None:
            actions.append(KeyRotationLifetimeAction(
                KeyRotationPolicyAction.notify,
                time_before_expiry=days_duration(policy.notify_before_expiry_days)))
        with self._access(vault, "setRotationPolicy", name):
            self._client_for(vault).update_key_rotation_policy(
                name, SdkPolicy(), lifetime_actions=actions,
                expires_in=days_duration(policy.expires_in_days))
