"""The alerting pipeline's wake-up: a storage queue message, made visible when a group is due,
starts the `flush_alert_group` queue trigger (pitcrew.alerting.ports.FlushQueue)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pitcrew.azure.queues import enqueue_job

ALERT_GROUPS_QUEUE = "pitcrew-alert-groups"
MAX_VISIBILITY_SECONDS = 7 * 86400 - 60  # a queue message may stay invisible up to 7 days


class QueueFlushQueue:
    """`service` builds the QueueServiceClient on first use (an event that schedules no flush
    never builds one)."""

    def __init__(self, service: Callable[[], Any]) -> None:
        self._service = service

    def schedule(self, group_id: str, delay_seconds: float) -> None:
        enqueue_job(self._service(), ALERT_GROUPS_QUEUE, group_id,
                    delay=min(max(0.0, delay_seconds), MAX_VISIBILITY_SECONDS))
