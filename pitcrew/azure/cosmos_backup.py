"""Cosmos DB backup policy, restorable accounts, point-in-time restore and scratch cleanup
(azure-mgmt-cosmosdb), and item counts from the documented `DocumentCount` platform metric
(azure-monitor-query's MetricsQueryClient). SDKs are imported inside the methods (cold start).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pitcrew.azure.arm import ResourceId
from pitcrew.housekeeping.recovery_ports import CosmosBackup, RestorableAccount

ClientFactory = Callable[[str, str, str], Any]
MetricsFactory = Callable[[], Any]
_SDK = ("azure.mgmt.cosmosdb", "CosmosDBManagementClient")


def _location_key(location: str) -> str:
    return location.replace(" ", "").lower()


class AzureCosmosBackups:
    def __init__(self, arm_client: ClientFactory, metrics_client: MetricsFactory) -> None:
        self._arm = arm_client
        self._metrics = metrics_client

    def _client(self, rid: ResourceId) -> Any:
        return self._arm(_SDK[0], _SDK[1], rid.subscription)

    @staticmethod
    def _parse(account_id: str) -> tuple[ResourceId, str]:
        rid = ResourceId.parse(account_id)
        name = rid.name("databaseAccounts")
        if not name:
            raise ValueError(f"{account_id[:200]!r} is not a Cosmos DB account id")
        return rid, name

    def backup(self, account_id: str) -> CosmosBackup:
        rid, name = self._parse(account_id)
        account = self._client(rid).database_accounts.get(rid.resource_group, name)
        policy = account.backup_policy
        mode = str(getattr(policy, "type", None) or "Periodic")
        if mode == "Continuous":
            props = getattr(policy, "continuous_mode_properties", None)
            tier = str(getattr(props, "tier", None) or "Continuous30Days")
            return CosmosBackup(account_id, account.location or "", "Continuous", tier=tier)
        props = getattr(policy, "periodic_mode_properties", None)
        return CosmosBackup(
            account_id, account.location or "", "Periodic",
            interval_minutes=getattr(props, "backup_interval_in_minutes", None),
            retention_hours=getattr(props, "backup_retention_interval_in_hours", None),
        )

    def restorable(self, account_id: str, location: str) -> RestorableAccount | None:
        rid, name = self._parse(account_id)
        found: list[RestorableAccount] = []
        for item in self._client(rid).restorable_database_accounts.list_by_location(
            _location_key(location)
        ):
            if (item.account_name or "").lower() != name.lower() or item.deletion_time:
                continue
            found.append(RestorableAccount(
                id=item.id, account_name=item.account_name, location=location,
                oldest_restorable=item.oldest_restorable_time, created=item.creation_time,
                deleted=item.deletion_time,
            ))
        found.sort(key=lambda r: r.created or datetime.min)
        return found[-1] if found else None

    def state(self, account_id: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        rid, name = self._parse(account_id)
        try:
            account = self._client(rid).database_accounts.get(rid.resource_group, name)
        except ResourceNotFoundError:
            return None
        return str(account.provisioning_state or "Succeeded")

    def tags(self, account_id: str) -> dict[str, str] | None:
        """The account's ARM tags (CosmosTags: a drill's test of its own scratch account)."""
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        rid, name = self._parse(account_id)
        try:
            account = self._client(rid).database_accounts.get(rid.resource_group, name)
        except ResourceNotFoundError:
            return None
        return {str(k): str(v) for k, v in (account.tags or {}).items()}

    def start_restore(self, scratch_id: str, *, location: str, source: RestorableAccount,
                      at: datetime, tags: dict[str, str], wait_seconds: float) -> bool:
        from azure.mgmt.cosmosdb import models  # SDK on first use (cold start)

        rid, name = self._parse(scratch_id)
        parameters = models.DatabaseAccountCreateUpdateParameters(
            location=location,
            tags=tags,
            properties=models.DatabaseAccountCreateUpdateProperties(
                locations=[models.Location(location_name=location, failover_priority=0)],
                create_mode="Restore",
                restore_parameters=models.RestoreParameters(
                    restore_mode="PointInTime",
                    restore_source=source.id,
                    restore_timestamp_in_utc=at,
                ),
                backup_policy=models.ContinuousModeBackupPolicy(),
            ),
        )
        poller = self._client(rid).database_accounts.begin_create_or_update(
            rid.resource_group, name, parameters, polling_interval=1
        )
        poller.wait(timeout=wait_seconds)
        return bool(poller.done())

    def wait(self, scratch_id: str, wait_seconds: float) -> str | None:
        deadline = time.monotonic() + wait_seconds
        while True:
            state = self.state(scratch_id)
            if state not in ("Creating", "Updating") or time.monotonic() >= deadline:
                return state
            time.sleep(min(5.0, max(0.05, deadline - time.monotonic())))

    def containers(self, account_id: str) -> set[str]:
        rid, name = self._parse(account_id)
        sql = self._client(rid).sql_resources
        out: set[str] = set()
        for database in sql.list_sql_databases(rid.resource_group, name):
            for container in sql.list_sql_containers(rid.resource_group, name, database.name):
                out.add(f"{database.name}/{container.name}")
        return out

    def item_counts(self, account_id: str, at: datetime) -> dict[str, float]:
        from azure.monitor.query import MetricAggregationType  # SDK on first use (cold start)

        response = self._metrics().query_resource(
            account_id, ["DocumentCount"],
            timespan=(at - timedelta(minutes=30), at + timedelta(minutes=5)),
            granularity=timedelta(minutes=5),
            aggregations=[MetricAggregationType.AVERAGE],
            filter="DatabaseName eq '*' and CollectionName eq '*'",
        )
        counts: dict[str, float] = {}
        for metric in response.metrics:
            for series in metric.timeseries:
                meta = {k.lower(): v for k, v in (series.metadata_values or {}).items()}
                points = [p.average for p in series.data if p.average is not None]
                if points:
                    key = f"{meta.get('databasename', '?')}/{meta.get('collectionname', '?')}"
                    counts[key] = float(points[-1])
        return counts

    def delete(self, account_id: str, wait_seconds: float) -> bool:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        rid, name = self._parse(account_id)
        try:
            poller = self._client(rid).database_accounts.begin_delete(
                rid.resource_group, name, polling_interval=1
            )
        except ResourceNotFoundError:
            return True
        poller.wait(timeout=wait_seconds)
        return bool(poller.done()) or self.state(account_id) is None
