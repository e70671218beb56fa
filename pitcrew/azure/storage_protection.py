"""A storage account's blob data protection (azure-mgmt-storage blob service properties): soft
delete of blobs and containers, versioning and point-in-time restore. Read only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pitcrew.azure.arm import ResourceId
from pitcrew.housekeeping.recovery_ports import BlobProtection

ClientFactory = Callable[[str, str, str], Any]


def _days(policy: Any) -> int | None:
    if policy is None or not getattr(policy, "enabled", False):
        return None
    return int(getattr(policy, "days", None) or 0) or None


class AzureStorageProtection:
    def __init__(self, arm_client: ClientFactory) -> None:
        self._arm = arm_client

    def blob_protection(self, account_id: str) -> BlobProtection:
        rid = ResourceId.parse(account_id)
        name = rid.name("storageAccounts")
        if not name:
            raise ValueError(f"{account_id[:200]!r} is not a storage account id")
        client = self._arm("azure.mgmt.storage", "StorageManagementClient", rid.subscription)
        props = client.blob_services.get_service_properties(rid.resource_group, name)
        return BlobProtection(
            soft_delete_days=_days(props.delete_retention_policy),
            container_soft_delete_days=_days(props.container_delete_retention_policy),
            versioning=bool(props.is_versioning_enabled),
            point_in_time_restore_days=_days(props.restore_policy),
        )
