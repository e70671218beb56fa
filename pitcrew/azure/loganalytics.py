"""Azure Backup job status from the Log Analytics workspace (azure-monitor-query LogsQueryClient),
with the query kept in the repository (pitcrew/housekeeping/queries/backup_jobs.kql)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from pitcrew.housekeeping.recovery_ports import BackupItemStatus

if TYPE_CHECKING:
    from pitcrew.runtime import Runtime

QUERY_FILE = "backup_jobs.kql"
COLUMNS = ("BackupItemUniqueId", "LastJobStart", "LastStatus", "LastFailureCode", "Failed")


class BackupQueryFailed(RuntimeError):
    """The workspace answered with an error or a partial result; the message names the code."""


def backup_jobs_query() -> str:
    return (resources.files("pitcrew.housekeeping") / "queries" / QUERY_FILE).read_text("utf-8")


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class LogAnalyticsBackupJobs:
    def __init__(self, client: Callable[[], Any]) -> None:
        self._client = client

    def item_status(self, workspace_id: str, lookback: timedelta) -> list[BackupItemStatus]:
        from azure.monitor.query import LogsQueryStatus  # SDK on first use (cold start)

        result = self._client().query_workspace(workspace_id, backup_jobs_query(),
                                                timespan=lookback)
        if result.status != LogsQueryStatus.SUCCESS:
            error = getattr(result, "partial_error", None)
            raise BackupQueryFailed(f"backup job query: {getattr(error, 'code', 'partial')}")
        out: list[BackupItemStatus] = []
        for table in result.tables:
            names = list(table.columns)
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise BackupQueryFailed(f"backup job query: columns {missing} missing")
            for row in table.rows:
                values = dict(zip(names, row, strict=False))
                out.append(BackupItemStatus(
                    item=str(values["BackupItemUniqueId"]),
                    last_start=_time(values["LastJobStart"]),
                    last_status=str(values["LastStatus"] or ""),
                    last_failure_code=(str(values["LastFailureCode"])
                                       if values["LastFailureCode"] else None),
                    failed=int(values["Failed"] or 0),
                ))
        return out


def logs_client(runtime: Runtime) -> Any:
    """A LogsQueryClient for api.loganalytics.io (the local endpoint's /loganalytics/v1)."""

    def build() -> Any:
        from azure.monitor.query import LogsQueryClient  # SDK on first use (cold start)

        kwargs = runtime.azure_client_kwargs()
        local = runtime.local_azure_url()
        if local:
            kwargs["endpoint"] = f"{local}/loganalytics/v1"
            kwargs["audience"] = "https://api.loganalytics.io"
        return LogsQueryClient(runtime.azure_credential(), **kwargs)

    return runtime.cached("logs_query_client", build)
