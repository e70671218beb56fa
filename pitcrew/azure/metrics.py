"""MetricSource (pitcrew.quota.ports) over azure-monitor-query's MetricsQueryClient: the newest
value of one resource metric over the last hour. Against the local Azure endpoint when
PITCREW_LOCAL_AZURE_URL is set, with the same client."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pitcrew.runtime import Runtime


class AzureMetrics:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _client(self) -> Any:
        return metrics_client(self._runtime)

    def latest(self, resource: str, metric: str, aggregation: str) -> float | None:
        result = self._client().query_resource(
            resource.strip("/"), metric_names=[metric], timespan=timedelta(hours=1),
            granularity=timedelta(minutes=5), aggregations=[aggregation])
        field = aggregation.lower()
        best: float | None = None
        for found in result.metrics:
            for series in found.timeseries:
                values = [float(v) for p in series.data
                          if (v := getattr(p, field, None)) is not None]
                if values and (best is None or values[-1] > best):
                    best = values[-1]
        return best


def metrics_client(runtime: Runtime) -> Any:
    """A MetricsQueryClient for ARM's metrics API (the local endpoint's when it is set)."""

    def build() -> Any:
        from azure.monitor.query import MetricsQueryClient  # SDK on first use (cold start)

        kwargs = runtime.azure_client_kwargs()
        local = runtime.local_azure_url()
        if local:
            kwargs["endpoint"] = local
            # The client takes its token audience from `endpoint` unless told: ARM's audience,
            # as in Azure, not the local endpoint's address (which ARM would refuse).
            kwargs["audience"] = "https://management.azure.com"
        return MetricsQueryClient(runtime.azure_credential(), **kwargs)

    return runtime.cached("metrics_query_client", build)
