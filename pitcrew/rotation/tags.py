"""The tags pitcrew reads and writes on secret versions (documented in docs/rotation.md).

Tags carry names, ids and times only, never a value: Key Vault shows tags to anyone who may
list secrets, including principals that may not read values.
"""

from __future__ import annotations

STRATEGY = "pitcrew-strategy"  # cosmos-keys | storage-keys | servicebus-keys | eventhubs-keys ...
RESOURCE = "pitcrew-resource"  # the ARM id of the resource whose key the version holds
KEY = "pitcrew-key"  # primary | secondary: which of the resource's two keys the version holds
VALID_FROM = "pitcrew-valid-from"  # ISO 8601, when the credential was issued
VALID_UNTIL = "pitcrew-valid-until"  # ISO 8601, the expiry written on the version
ROTATED_AT = "pitcrew-rotated-at"  # ISO 8601, when pitcrew promoted this version
RUN = "pitcrew-run"  # the rotation run that wrote the version (makes promotion idempotent)
PENDING_FOR = "pitcrew-pending-for"  # on a pending secret: the secret it will be promoted to
HOOK = "pitcrew-hook"  # generated credentials: the hook that applies them
TARGET = "pitcrew-target"  # generated credentials: what the hook applies them to

SLOT_NAMES = ("primary", "secondary")
