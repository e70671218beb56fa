"""The ports the recovery-readiness checks depend on (backups, drills, image purge).

`pitcrew/azure/` implements them: cosmos_backup.py (azure-mgmt-cosmosdb and the DocumentCount
metric through azure-monitor-query), storage_protection.py (azure-mgmt-storage),
loganalytics.py (LogsQueryClient), registry.py (azure-containerregistry). Names, times, sizes
and counts only: no key or connection string passes through them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from pitcrew.housekeeping.recovery_policy import RecoveryPolicy
from pitcrew.ports import AuditLog, Notifier, StateStore


@dataclass(frozen=True)
class CosmosBackup:
    """An account's backup policy as ARM reports it."""

    account_id: str
    location: str
    mode: str  # "Continuous" | "Periodic"
    tier: str | None = None  # Continuous7Days | Continuous30Days
    interval_minutes: int | None = None  # periodic
    retention_hours: int | None = None  # periodic

    @property
    def continuous_hours(self) -> int | None:
        if self.mode != "Continuous":
            return None
        return 720 if (self.tier or "").lower() == "continuous30days" else 168


@dataclass(frozen=True)
class RestorableAccount:
    id: str  # /subscriptions/../locations/{l}/restorableDatabaseAccounts/{instance id}
    account_name: str
    location: str
    oldest_restorable: datetime | None
    created: datetime | None = None
    deleted: datetime | None = None


@dataclass(frozen=True)
class BlobProtection:
    soft_delete_days: int | None  # None: blob soft delete off
    container_soft_delete_days: int | None
    versioning: bool
    point_in_time_restore_days: int | None  # None: off


@dataclass(frozen=True)
class BackupItemStatus:
    """One backup item's latest backup job in the lookback (the repository's KQL query)."""

    item: str
    last_start: datetime | None
    last_status: str
    last_failure_code: str | None
    failed: int


@dataclass(frozen=True)
class Manifest:
    digest: str
    tags: tuple[str, ...]
    size: int
    updated: datetime | None
    can_delete: bool = True
    can_write: bool = True


class CosmosBackups(Protocol):
    def backup(self, account_id: str) -> CosmosBackup: ...

    def restorable(self, account_id: str, location: str) -> RestorableAccount | None:
        """The live (not deleted) restorable account behind `account_id`, or None."""
        ...

    def state(self, account_id: str) -> str | None:
        """The account's provisioning state; None when it does not exist."""
        ...

    def start_restore(self, scratch_id: str, *, location: str, source: RestorableAccount,
                      at: datetime, tags: dict[str, str], wait_seconds: float) -> bool:
        """Create `scratch_id` with createMode Restore; True once the LRO finished."""
        ...

    def wait(self, scratch_id: str, wait_seconds: float) -> str | None:
        """Poll until the account leaves Creating (or the budget is spent): its state."""
        ...

    def containers(self, account_id: str) -> set[str]:
        """`database/container` of every SQL container."""
        ...

    def item_counts(self, account_id: str, at: datetime) -> dict[str, float]:
        """`database/container` -> items, from the DocumentCount metric around `at`."""
        ...

    def delete(self, account_id: str, wait_seconds: float) -> bool:
        """Delete (absent is fine); True once it is gone."""
        ...


class CosmosTags(Protocol):
    """Optional on the Cosmos DB port: an account's ARM tags. When the port has it, a restore
    drill trusts an existing scratch account as its own only when its `pitcrew-drill` tag is
    the run's id; without it, only when the run itself asked Azure for that restore."""

    def tags(self, account_id: str) -> dict[str, str] | None:
        """The account's tags; None when it does not exist."""
        ...


class StorageProtection(Protocol):
    def blob_protection(self, account_id: str) -> BlobProtection: ...


class BackupJobs(Protocol):
    def item_status(self, workspace_id: str, lookback: timedelta) -> list[BackupItemStatus]: ...


class ImageRegistry(Protocol):
    def manifests(self, login_server: str, repository: str) -> list[Manifest]: ...

    def resolve(self, login_server: str, repository: str, reference: str) -> str | None:
        """The digest a tag (or digest) names now; None when it does not resolve."""
        ...

    def delete(self, login_server: str, repository: str, digest: str) -> None: ...


@dataclass
class RecoveryServices:
    policy: RecoveryPolicy
    state: StateStore
    audit: AuditLog
    router: Notifier
    cosmos: CosmosBackups
    storage: StorageProtection
    jobs: BackupJobs
    registry: ImageRegistry
    plan_only: bool = False  # the policy's `mode: plan`
    budget_seconds: float = 240.0
    extra: dict[str, str] = field(default_factory=dict)
