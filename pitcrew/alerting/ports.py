"""The ports of the alerting pipeline (pitcrew.azure.tables.alerting implements the stores over
Table storage, every update conditional on the row's ETag; pitcrew.azure.alerting the queue).

    AlertStore       groups and the alerts in them
    NotificationLog  what each receiver was told about each group
    SilenceStore     silences
    FlushQueue       wakes the flush of a group after a delay (a storage queue message made
                     visible then)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pitcrew.alerting.model import Group, LogEntry, Silence, StoredAlert
from pitcrew.http.paging import Page


class AlertStore(Protocol):
    def get_group(self, group_id: str) -> Group | None: ...

    def create_group(self, group: Group) -> Group:
        """Insert the group; when it exists, return the stored one."""
        ...

    def save_group(self, group: Group) -> None:
        """Update the group if nobody changed it since it was read (Conflict otherwise)."""
        ...

    def delete_group(self, group: Group) -> bool:
        """Delete the group if nobody changed it since it was read; False otherwise."""
        ...

    def groups(self) -> list[Group]: ...

    def get_alert(self, group_id: str, fingerprint: str) -> StoredAlert | None: ...

    def put_alert(self, alert: StoredAlert) -> None:
        """Insert (etag "") or update conditionally (Conflict when changed meanwhile)."""
        ...

    def insert_alerts(self, alerts: Sequence[StoredAlert]) -> list[StoredAlert]:
        """Insert the alerts whose rows do not exist yet (one group's alerts share a partition:
        up to 100 in one round trip); those inserted, their ETags set. An alert whose row
        exists is left out, for the caller to update on its ETag."""
        ...

    def delete_alert(self, alert: StoredAlert) -> bool: ...

    def alerts(self, group_id: str) -> list[StoredAlert]: ...

    def find_alerts(self, fingerprint: str) -> list[StoredAlert]:
        """The alert in every group that holds it."""
        ...

    def firing_alerts(self) -> list[StoredAlert]: ...


class NotificationLog(Protocol):
    def get(self, group_id: str, receiver: str) -> LogEntry | None: ...

    def save(self, entry: LogEntry) -> None:
        """Insert (etag "") or update conditionally (Conflict when changed meanwhile)."""
        ...


class SilenceStore(Protocol):
    def add(self, silence: Silence) -> None: ...

    def get(self, silence_id: str) -> Silence | None: ...

    def save(self, silence: Silence) -> None:
        """Update conditionally (Conflict when changed meanwhile)."""
        ...

    def unexpired(self, now: datetime) -> list[Silence]:
        """The silences that end after `now` (active or still to start): silences are never
        deleted, so the expired ones are left out by the query, not after it."""
        ...

    def page(self, *, limit: int, continuation: Mapping[str, Any] | None = None
             ) -> Page[Silence]: ...


class FlushQueue(Protocol):
    def schedule(self, group_id: str, delay_seconds: float) -> None: ...
