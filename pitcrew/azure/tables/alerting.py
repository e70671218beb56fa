"""The alerting stores (pitcrew.alerting.ports) over Table storage, every update conditional on
the row's ETag:

    <prefix>alertgroups   PartitionKey "group", RowKey = group id (a digest of the group key)
    <prefix>alerts        PartitionKey = group id, RowKey = a digest of the alert's fingerprint
    <prefix>nflog         PartitionKey = group id, RowKey = receiver
    <prefix>silences      PartitionKey "silence", RowKey = silence id
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pitcrew.alerting.labels import digest
from pitcrew.alerting.model import Group, LogEntry, Silence, StoredAlert
from pitcrew.alerting.policy import Matcher
from pitcrew.azure.tables import transactions
from pitcrew.azure.tables.keys import printable, row_etag, table_key
from pitcrew.azure.tables.paging import query_page
from pitcrew.azure.tables.payload import pack, unpack
from pitcrew.errors import Conflict
from pitcrew.http.paging import Page
from pitcrew.notify.model import Notification

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_GROUP = "group"
_SILENCE = "silence"


def _etag(row: Any) -> str:
    return row_etag(row) or str(row.get("etag", ""))


def _insert_or_update(table: TableClient, entity: dict[str, Any], etag: str) -> str:
    """Insert when `etag` is "", else replace only if unchanged; Conflict otherwise."""
    from azure.core import MatchConditions  # SDK on first use (cold start)
    from azure.core.exceptions import (  # SDK on first use
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )
    from azure.data.tables import UpdateMode  # SDK on first use

    try:
        if not etag:
            meta = table.create_entity(entity)
        else:
            meta = table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                       match_condition=MatchConditions.IfNotModified)
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        raise Conflict(f"row {entity['PartitionKey']}/{entity['RowKey']} changed under us") \
            from None
    return str(meta["etag"])


def _delete(table: TableClient, partition: str, row: str, etag: str) -> bool:
    from azure.core import MatchConditions  # SDK on first use (cold start)
    from azure.core.exceptions import (  # SDK on first use
        ResourceModifiedError,
        ResourceNotFoundError,
    )

    try:
        table.delete_entity(partition, row, etag=etag,
                            match_condition=MatchConditions.IfNotModified)
    except ResourceNotFoundError:
        return True
    except ResourceModifiedError:
        return False
    return True


def _get(table: TableClient, partition: str, row: str) -> Any | None:
    from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

    try:
        return table.get_entity(partition, row)
    except ResourceNotFoundError:
        return None


class TableAlertStore:
    def __init__(self, groups: TableClient, alerts: TableClient) -> None:
        self._groups = groups
        self._alerts = alerts

    # groups

    def get_group(self, group_id: str) -> Group | None:
        row = _get(self._groups, _GROUP, table_key(group_id))
        return _group(row) if row is not None else None

    def create_group(self, group: Group) -> Group:
        try:
            group.etag = _insert_or_update(self._groups, _group_entity(group), "")
        except Conflict:
            found = self.get_group(group.id)
            if found is None:
                raise
            return found
        return group

    def save_group(self, group: Group) -> None:
        group.etag = _insert_or_update(self._groups, _group_entity(group), group.etag)

    def delete_group(self, group: Group) -> bool:
        return _delete(self._groups, _GROUP, table_key(group.id), group.etag)

    def groups(self) -> list[Group]:
        return [_group(r) for r in self._groups.query_entities(
            "PartitionKey eq @p", parameters={"p": _GROUP})]

    # alerts

    def get_alert(self, group_id: str, fingerprint: str) -> StoredAlert | None:
        row = _get(self._alerts, table_key(group_id), digest(fingerprint))
        return _alert(row) if row is not None else None

    def put_alert(self, alert: StoredAlert) -> None:
        alert.etag = _insert_or_update(self._alerts, _alert_entity(alert), alert.etag)

    def insert_alerts(self, alerts: Sequence[StoredAlert]) -> list[StoredAlert]:
        if len(alerts) == 1:  # one row: a plain insert costs the emulator less than a batch
            try:
                self.put_alert(alerts[0])
            except Conflict:
                return []
            return list(alerts)
        by_row = {(table_key(a.group_id), digest(a.fingerprint)): a for a in alerts}
        inserted = []
        for entity, meta in transactions.insert_new(
                self._alerts, [_alert_entity(alert) for alert in alerts]):
            alert = by_row[(entity["PartitionKey"], entity["RowKey"])]
            alert.etag = str(meta["etag"])
            inserted.append(alert)
        return inserted

    def delete_alert(self, alert: StoredAlert) -> bool:
        return _delete(self._alerts, table_key(alert.group_id), digest(alert.fingerprint),
                       alert.etag)

    def alerts(self, group_id: str) -> list[StoredAlert]:
        return [_alert(r) for r in self._alerts.query_entities(
            "PartitionKey eq @p", parameters={"p": table_key(group_id)})]

    def find_alerts(self, fingerprint: str) -> list[StoredAlert]:
        return [_alert(r) for r in self._alerts.query_entities(
            "RowKey eq @r", parameters={"r": digest(fingerprint)})]

    def firing_alerts(self) -> list[StoredAlert]:
        return [_alert(r) for r in self._alerts.query_entities(
            "Status eq @s", parameters={"s": "firing"})]


def _alert_entity(alert: StoredAlert) -> dict[str, Any]:
    return {
        "PartitionKey": table_key(alert.group_id),
        "RowKey": digest(alert.fingerprint),
        "GroupId": alert.group_id,
        "Fingerprint": printable(alert.fingerprint),
        **pack("Labels", json.dumps(alert.labels)),  # up to 44 labels of 1,024 characters
        "Status": alert.status,
        "StartsAt": alert.starts_at,
        "EndsAt": alert.ends_at,
        "UpdatedAt": alert.updated_at,
        **pack("Payload", json.dumps(alert.notification.to_dict())),
    }


def _group_entity(group: Group) -> dict[str, Any]:
    return {
        "PartitionKey": _GROUP,
        "RowKey": table_key(group.id),
        "GroupId": group.id,
        "GroupKey": printable(group.key)[:30_000],
        "Route": group.route,
        "Receiver": group.receiver,
        **pack("Labels", json.dumps(group.labels)),  # cut JSON would not read back
        "CreatedAt": group.created_at,
        "NextFlushAt": group.next_flush_at,
        "LastFlushAt": group.last_flush_at,
        "FlushingUntil": group.flushing_until,
    }


def _group(row: Any) -> Group:
    return Group(
        id=row["GroupId"], key=row["GroupKey"], route=row["Route"], receiver=row["Receiver"],
        labels=json.loads(unpack("Labels", row, "{}")), created_at=row["CreatedAt"],
        next_flush_at=row.get("NextFlushAt"), last_flush_at=row.get("LastFlushAt"),
        flushing_until=row.get("FlushingUntil"), etag=_etag(row),
    )


def _alert(row: Any) -> StoredAlert:
    return StoredAlert(
        group_id=row["GroupId"], fingerprint=row["Fingerprint"],
        labels=json.loads(unpack("Labels", row, "{}")), status=row["Status"],
        starts_at=row["StartsAt"], ends_at=row.get("EndsAt"), updated_at=row["UpdatedAt"],
        notification=Notification.from_dict(json.loads(unpack("Payload", row))), etag=_etag(row),
    )


class TableNotificationLog:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, group_id: str, receiver: str) -> LogEntry | None:
        row = _get(self._table, table_key(group_id), table_key(receiver))
        if row is None:
            return None
        return LogEntry(
            group_id=group_id, receiver=receiver, group_key=row.get("GroupKey", ""),
            firing=json.loads(unpack("Firing", row, "{}")), sent_at=row.get("SentAt"),
            seq=int(row.get("Seq") or 0), last_notification=row.get("LastNotification", ""),
            etag=_etag(row),
        )

    def save(self, entry: LogEntry) -> None:
        entity = {
            "PartitionKey": table_key(entry.group_id),
            "RowKey": table_key(entry.receiver),
            "GroupKey": printable(entry.group_key)[:30_000],
            # A group of a few hundred alerts outgrows one 64 KiB property: chunked, compressed.
            **pack("Firing", json.dumps(entry.firing)),
            "SentAt": entry.sent_at,
            "Seq": entry.seq,
            "LastNotification": printable(entry.last_notification)[:1000],
        }
        entry.etag = _insert_or_update(self._table, entity, entry.etag)


class TableSilenceStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def add(self, silence: Silence) -> None:
        silence.etag = _insert_or_update(self._table, _silence_entity(silence), "")

    def get(self, silence_id: str) -> Silence | None:
        row = _get(self._table, _SILENCE, table_key(silence_id))
        return _silence(row) if row is not None else None

    def save(self, silence: Silence) -> None:
        silence.etag = _insert_or_update(self._table, _silence_entity(silence), silence.etag)

    def unexpired(self, now: datetime) -> list[Silence]:
        return [_silence(r) for r in self._table.query_entities(
            "PartitionKey eq @p and EndsAt gt @now", parameters={"p": _SILENCE, "now": now})]

    def page(self, *, limit: int, continuation: Mapping[str, Any] | None = None
             ) -> Page[Silence]:
        page = query_page(self._table, "PartitionKey eq @p", parameters={"p": _SILENCE},
                          limit=limit, continuation=continuation)
        return page.map(_silence)


def _silence_entity(silence: Silence) -> dict[str, Any]:
    return {
        "PartitionKey": _SILENCE,
        "RowKey": table_key(silence.id),
        "SilenceId": silence.id,
        "Matchers": json.dumps([m.to_dict() for m in silence.matchers]),
        "StartsAt": silence.starts_at,
        "EndsAt": silence.ends_at,
        "Comment": printable(silence.comment),
        "CreatedBy": printable(silence.created_by),
        "CreatedAt": silence.created_at,
        "UpdatedAt": silence.updated_at,
        "ExpiredBy": printable(silence.expired_by),
    }


def _silence(row: Any) -> Silence:
    return Silence(
        id=row["SilenceId"],
        matchers=[Matcher(m["name"], m["op"], m["value"]) for m in json.loads(row["Matchers"])],
        starts_at=row["StartsAt"], ends_at=row["EndsAt"], comment=row.get("Comment", ""),
        created_by=row.get("CreatedBy", ""), created_at=row["CreatedAt"],
        updated_at=row["UpdatedAt"], expired_by=row.get("ExpiredBy", ""), etag=_etag(row),
    )
