"""Capacity beyond quotas: resource metrics the policy gives a capacity (Cosmos DB normalized
RU consumption against 100 %, a Service Bus namespace's size against its maximum, a storage
account's used capacity against a budget), read through Azure Monitor metrics and then treated
exactly like quotas (samples, forecast, thresholds, notifications; never increase requests)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pitcrew.quota.model import Reading
from pitcrew.quota.ports import QuotaServices

log = logging.getLogger(__name__)


def capacity_readings(q: QuotaServices, failed: list[str]) -> Iterator[Reading]:
    """One reading per capacity metric in the policy; a metric that cannot be read is logged
    and named in `failed`."""
    for metric in q.policy.quota.capacity:
        try:
            value = q.metrics.latest(metric.resource, metric.metric, metric.aggregation)
        except Exception as exc:  # one resource down must not hide the others
            log.error("capacity metric %s (%s) failed: %s", metric.name, metric.metric,
                      type(exc).__name__)
            failed.append(metric.quota.id)
            continue
        if value is None:
            log.info("capacity metric %s has no value in the last hour", metric.name)
            continue
        yield Reading(metric.quota, float(value), metric.capacity, unit=metric.unit or "",
                      adjustable=False, display=metric.name)
