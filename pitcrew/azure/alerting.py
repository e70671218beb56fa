"""The alerting pipeline's wake-up: a storage queue message, made visible when a group is due,
starts the `flush_alert_group` queue trigger (pitcrew.alerting.ports.FlushQueue)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pitcrew.azure.queues import StorageJobQueue

ALERT_GROUPS_QUEUE = "pitcrew-alert-groups"


class QueueFlushQueue(StorageJobQueue):
    """The job queue of group flushes. `service` builds the QueueServiceClient on first use (an
    event that schedules no flush never builds one)."""

    def __init__(self, service: Callable[[], Any]) -> None:
        super().__init__(service, ALERT_GROUPS_QUEUE)

    def schedule(self, group_id: str, delay_seconds: float) -> None:
        self.enqueue(group_id, delay=delay_seconds)
