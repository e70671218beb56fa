"""The `recovery:` section of pitcrew.yaml (see docs/recovery.md): what is protected, how well,
which restore drills run, and which registry images the purge may remove.

    recovery:
      backups:
        cosmos:                         # Cosmos DB accounts and the backup they must have
          - account: /subscriptions/.../Microsoft.DocumentDB/databaseAccounts/orders
            rpo_minutes: 240            # periodic: interval at most this
            retention_hours: 720        # periodic: retention at least this; continuous: tier
            continuous: true            # continuous backup required (7 or 30 days tier)
        storage:                        # blob soft delete, versioning, point-in-time restore
          - account: /subscriptions/.../Microsoft.Storage/storageAccounts/pitcrewstate
            soft_delete_days: 14
            versioning: true
            point_in_time_restore_days: 13
        jobs:                           # Azure Backup jobs in Log Analytics (resource-specific)
          workspace_id: 00000000-0000-0000-0000-000000000000
          items:
            - item: "eastus;...;vm-web-1"    # BackupItemUniqueId
              rpo_hours: 24
      drills:
        - name: orders-cosmos
          account: /subscriptions/.../Microsoft.DocumentDB/databaseAccounts/orders
          every_days: 30
          restore: true                 # create a scratch account (else: check coverage only)
          scratch_resource_group: rg-drills
          tolerance_percent: 5
          owner: team-data              # periodic backup: who files the support case
      images:
        registries:
          - login_server: acrprod.azurecr.io
            repositories: [api, worker]
            keep_last: 10
            older_than_days: 30
            protect: ["^v\\d+\\.\\d+\\.\\d+$", "^latest$"]
            in_use: ["api:2024.06.1"]   # running deployments' images: never removed
"""

from __future__ import annotations

import re
import uuid

from pydantic import Field, field_validator, model_validator

from pitcrew.schema import StrictModel, matching

_NAME = r"^[a-z][a-z0-9-]{0,62}$"
_COSMOS = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                     r"Microsoft\.DocumentDB/databaseAccounts/[a-z0-9-]{3,44}$", re.I)
_STORAGE = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                      r"Microsoft\.Storage/storageAccounts/[a-z0-9]{3,24}$", re.I)
_GROUP = re.compile(r"^[-\w._()]{1,90}$")
_LOGIN_SERVER = re.compile(r"^[a-z0-9]{5,50}(\.[a-z0-9-]+)+$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
_REFERENCE = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$")


def _cosmos_id(value: str) -> str:
    return matching(value, _COSMOS, " is not a Cosmos DB account resource id", shown=200)


class CosmosBackupRule(StrictModel):
    account: str
    continuous: bool = Field(default=True, description="Continuous backup (point in time) "
                             "required; false accepts periodic backup.")
    rpo_minutes: int = Field(default=240, ge=60, le=24 * 60,
                             description="Periodic backup: the interval may be at most this.")
    retention_hours: int = Field(default=168, ge=8, le=720 * 24,
                                 description="Retention at least this (continuous: 7-day tier "
                                 "is 168 hours, 30-day tier 720).")

    _account = field_validator("account")(classmethod(lambda cls, v: _cosmos_id(v)))


class StorageProtectionRule(StrictModel):
    account: str
    soft_delete_days: int = Field(default=7, ge=1, le=365)
    container_soft_delete_days: int | None = Field(default=None, ge=1, le=365)
    versioning: bool = True
    point_in_time_restore_days: int | None = Field(default=None, ge=1, le=364)

    @field_validator("account")
    @classmethod
    def _storage(cls, value: str) -> str:
        return matching(value, _STORAGE, " is not a storage account resource id", shown=200)

    @model_validator(mode="after")
    def _restore_fits(self) -> StorageProtectionRule:
        days = self.point_in_time_restore_days
        if days is not None and (days >= self.soft_delete_days or not self.versioning):
            raise ValueError("point_in_time_restore_days needs versioning and must be shorter "
                             "than soft_delete_days (as Azure requires)")
        return self


class BackupItemRule(StrictModel):
    item: str = Field(min_length=1, max_length=500, description="Azure Backup's "
                      "BackupItemUniqueId (CoreAzureBackup | distinct BackupItemUniqueId).")
    name: str | None = Field(default=None, max_length=200)
    rpo_hours: float = Field(default=24.0, gt=0, le=24 * 31)


class BackupJobsRule(StrictModel):
    workspace_id: str = Field(description="The Log Analytics workspace (customer) id.")
    items: list[BackupItemRule] = Field(default_factory=list)
    lookback_hours: float = Field(default=72.0, ge=1, le=24 * 31)

    @field_validator("workspace_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError(f"{value[:100]!r} is not a workspace id (a GUID)") from None
        return value


class BackupPolicy(StrictModel):
    cosmos: list[CosmosBackupRule] = Field(default_factory=list)
    storage: list[StorageProtectionRule] = Field(default_factory=list)
    jobs: BackupJobsRule | None = None


class DrillRule(StrictModel):
    name: str = Field(pattern=_NAME)
    account: str
    every_days: int = Field(default=30, ge=1, le=366)
    grace_days: int = Field(default=7, ge=0, le=90,
                            description="A drill is overdue this long after it was due.")
    restore: bool = Field(default=True, description="Restore to a scratch account (continuous "
                          "backup); false checks the restorable window only.")
    rpo_minutes: int = Field(default=60, ge=1, le=30 * 24 * 60,
                             description="The restorable window must reach back this far.")
    restore_lag_minutes: int = Field(default=10, ge=1, le=24 * 60,
                                     description="Restore to this long before now.")
    scratch_resource_group: str | None = Field(
        default=None, description="Where the scratch account goes (default: the source's).")
    tolerance_percent: float = Field(default=5.0, ge=0, le=100)
    max_hours: float = Field(default=12.0, gt=0, le=72,
                             description="After this the drill fails and the scratch goes.")
    owner: str = Field(default="unassigned", min_length=1, max_length=200)
    manual_due_days: int = Field(default=14, ge=1, le=90,
                                 description="Periodic backup: the support case is due then.")

    _account = field_validator("account")(classmethod(lambda cls, v: _cosmos_id(v)))

    @field_validator("scratch_resource_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return None if value is None else matching(value, _GROUP, " is not a resource group name")


class RegistryRule(StrictModel):
    login_server: str
    repositories: list[str] = Field(min_length=1)
    keep_last: int = Field(default=10, ge=1, le=10_000)
    older_than_days: float = Field(default=30.0, ge=1, le=3650)
    protect: list[str] = Field(default_factory=list,
                               description="Tag regexes never removed (e.g. release tags).")
    in_use: list[str] = Field(default_factory=list,
                              description="repo:tag or repo@digest of running deployments.")
    max_deletes: int = Field(default=500, ge=1, le=10_000)

    @field_validator("login_server")
    @classmethod
    def _server(cls, value: str) -> str:
        return matching(value, _LOGIN_SERVER, " is not a registry login server")

    @field_validator("repositories")
    @classmethod
    def _repos(cls, value: list[str]) -> list[str]:
        return [matching(repo, _REPOSITORY, " is not a repository name", max_length=256)
                for repo in value]

    @field_validator("protect")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern[:100]!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("in_use")
    @classmethod
    def _references(cls, value: list[str]) -> list[str]:
        return [matching(ref, _REFERENCE, ": give repo:tag or repo@sha256:<digest>")
                for ref in value]


class ImagesPolicy(StrictModel):
    registries: list[RegistryRule] = Field(default_factory=list)


class RecoveryPolicy(StrictModel):
    backups: BackupPolicy = Field(default_factory=BackupPolicy)
    drills: list[DrillRule] = Field(default_factory=list)
    images: ImagesPolicy = Field(default_factory=ImagesPolicy)

    @model_validator(mode="after")
    def _unique_drills(self) -> RecoveryPolicy:
        names = [d.name for d in self.drills]
        if len(set(names)) != len(names):
            raise ValueError("drills: a drill name is used twice")
        return self

    def drill(self, name: str) -> DrillRule | None:
        return next((d for d in self.drills if d.name == name), None)
