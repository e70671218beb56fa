"""FailedMessageStore (pitcrew.deadletter.ports) over Table storage, bodies in Blob storage.

Messages: `<prefix>dlqmessages`, PartitionKey = group, RowKey = message id. The id is derived
from the message's identity at its source, so ingesting the same message twice inserts once.
A body up to INLINE_MAX bytes is kept in the row (`Body`, binary): stored, read and replayed
with the row, no blob round trip; a larger one is a blob named by the message id, written
before the row.
Groups: `<prefix>dlqgroups`, PartitionKey "group", RowKey = group id, with counts, first and
last seen and which notifications were sent. Every change is ETag-conditional.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from pitcrew.azure.tables import transactions
from pitcrew.azure.tables.keys import row_etag
from pitcrew.azure.tables.paging import keyed_page, query_page, where
from pitcrew.deadletter.bodies import preview, searchable
from pitcrew.deadletter.grouping import group_of
from pitcrew.deadletter.model import (
    SCAN_BUDGET,
    Arrival,
    FailedMessage,
    Group,
    MessageFilter,
    NotFound,
    StaleMessage,
    decode_properties,
    encode_properties,
)
from pitcrew.deadletter.ports import BodyStore
from pitcrew.errors import InvalidInput, RetryLater
from pitcrew.http.paging import Page, encode_token

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)
GROUP_PARTITION = "group"
_CHUNK = 250
_MAX_TEXT = 30_000  # a Table string property holds 32 K characters
INLINE_MAX = 32 * 1024  # bodies up to this many bytes live in the row (a binary holds 64 KiB)
_TRANSACTION_BYTES = 3 * 2**20  # a transaction's payload may not exceed 4 MiB


class TableFailedMessageStore:
    """FailedMessageStore (pitcrew.deadletter.ports): rows in two tables, bodies in a
    BodyStore (Blob storage)."""

    def __init__(self, messages: TableClient, groups: TableClient, bodies: BodyStore) -> None:
        self._messages = messages
        self._groups = groups
        self.bodies = bodies

    # ------------------------------------------------------------------ writes

    def put_many(self, items: Sequence[tuple[FailedMessage, bytes]]) -> set[str]:
        """Store messages and return the ids that were new. A body up to INLINE_MAX bytes is
        kept in the row itself (one write, no blob); a larger one goes to Blob storage first,
        then the row. Rows of one group go in entity-group transactions. A message already
        stored (a second ingest) is left as it is.

        Every row is built before anything is written: a message that cannot be stored
        (InvalidInput: properties too large) fails the call with nothing written, so the
        caller can set it apart and store the others (pitcrew.deadletter.ingest)."""
        if not items:
            return set()
        by_group: dict[str, list[tuple[FailedMessage, dict[str, Any]]]] = {}
        for message, body in items:
            message.body = body if len(body) <= INLINE_MAX else None
            message.body_size = len(body)
            message.body_sha256 = _digest(body)
            message.preview = preview(body, message.source_kind)
            by_group.setdefault(message.group, []).append((message, _entity(message)))
        large = [(m.id, body) for m, body in items if len(body) > INLINE_MAX]
        if large:
            self.bodies.put_many(large)
        created: set[str] = set()
        for entities in by_group.values():
            for chunk in _transactions(entities):
                created |= self._create_chunk(chunk)
        return created

    def _create_chunk(self, chunk: list[tuple[FailedMessage, dict[str, Any]]]) -> set[str]:
        """Insert one group's rows in transactions. A row that exists makes the transaction
        fail naming its index: that one is tried alone (ResourceExistsError proves it is
        stored; never assumed) and the rest go again together; after two such rounds the
        rest go one by one (a whole batch ingested before)."""
        from azure.core.exceptions import ResourceExistsError  # SDK on first use (cold start)
        from azure.data.tables import TableTransactionError

        created: set[str] = set()
        pending = list(chunk)
        alone: list[tuple[FailedMessage, dict[str, Any]]] = []
        for _ in range(2):
            if len(pending) < 2:
                break
            try:
                transactions.submit(self._messages, [("create", e) for _, e in pending])
            except TableTransactionError as exc:
                index = exc.index if 0 <= exc.index < len(pending) else 0
                alone.append(pending.pop(index))
                continue
            created.update(m.id for m, _ in pending)
            pending = []
            break
        for message, entity in alone + pending:
            try:
                self._messages.create_entity(entity)
                created.add(message.id)
            except ResourceExistsError:
                log.info("failed message %s in group %s is already stored", message.id,
                         message.group)
        return created

    def put(self, message: FailedMessage, body: bytes) -> bool:
        return message.id in self.put_many([(message, body)])

    def update(self, message: FailedMessage) -> FailedMessage:
        """Replace the row if nobody changed it since it was read (StaleMessage otherwise)."""
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError
        from azure.data.tables import UpdateMode

        try:
            meta = self._messages.update_entity(
                _entity(message), mode=UpdateMode.REPLACE, etag=message.etag,
                match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            raise StaleMessage(f"failed message {message.id} changed under us") from None
        message.etag = meta["etag"]
        return message

    def update_many(self, messages: Sequence[FailedMessage], *,
                    fields: Sequence[str] | None = None) -> list[FailedMessage]:
        """Conditional update of the messages of one group in one transaction (per 100 rows
        and 3 MB); the ones that changed under us are left out of the result. A failed
        transaction names the stale row: the rest go again together, that one alone.

        `fields`: the only attributes that changed since the row was read (a state
        transition: claim, settle); they are merged into the row, nothing else is sent. A
        message where one of them is None (a column to remove) is replaced whole."""
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.data.tables import TableTransactionError, UpdateMode

        done: list[FailedMessage] = []
        by_group: dict[str, list[FailedMessage]] = {}
        for message in messages:
            by_group.setdefault(message.group, []).append(message)
        for group_messages in by_group.values():
            rows = [(m, _changes(m, fields)) for m in group_messages]
            modes = {id(m): merge for m, (_, merge) in rows}
            for chunk in _transactions([(m, e) for m, (e, _) in rows]):
                pending = list(chunk)
                alone: list[FailedMessage] = []
                for _ in range(3):
                    if len(pending) < 2:
                        break
                    ops = [("update", e, {"mode": UpdateMode.MERGE if modes[id(m)]
                                          else UpdateMode.REPLACE, "etag": m.etag,
                                          "match_condition": MatchConditions.IfNotModified})
                           for m, e in pending]
                    try:
                        results = transactions.submit(self._messages, ops)
                    except TableTransactionError as exc:
                        index = exc.index if 0 <= exc.index < len(pending) else 0
                        alone.append(pending.pop(index)[0])
                        continue
                    for (message, _), meta in zip(pending, results, strict=True):
                        message.etag = meta["etag"]
                        done.append(message)
                    pending = []
                    break
                for message in alone + [m for m, _ in pending]:
                    try:
                        done.append(self.update(message))  # the whole row: always right
                    except StaleMessage:
                        log.info("failed message %s changed under us; skipped", message.id)
        order = {id(m): i for i, m in enumerate(messages)}
        return sorted(done, key=lambda m: order[id(m)])

    def delete(self, message: FailedMessage) -> None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        if message.body is None:  # held in Blob storage (or not known: delete it anyway)
            self.bodies.delete(message.id)
        with contextlib.suppress(ResourceNotFoundError):
            self._messages.delete_entity(message.group, message.id)

    # ------------------------------------------------------------------ reads

    def get(self, message_id: str) -> FailedMessage:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        try:
            row = self._messages.get_entity(group_of(message_id), message_id)
        except ResourceNotFoundError:
            raise NotFound("message", message_id) from None
        return _message(row)

    def body(self, message_id: str) -> bytes:
        """The body, from the row when it is held there, else from Blob storage."""
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        inline: Any = None
        with contextlib.suppress(ResourceNotFoundError):
            inline = self._messages.get_entity(group_of(message_id), message_id,
                                               select=["Body"]).get("Body")
        if inline is not None:
            return bytes(inline)
        try:
            return self.bodies.get(message_id)
        except ResourceNotFoundError:
            raise NotFound("body", message_id) from None

    def bodies_of(self, messages: Sequence[FailedMessage]) -> list[bytes]:
        """The bodies of messages read from the store, in order: those held in the row cost no
        round trip; the rest are fetched from Blob storage concurrently."""
        wanted = [m.id for m in messages if m.body is None]
        fetched = dict(zip(wanted, self.bodies.get_many(wanted), strict=True)) if wanted else {}
        return [m.body if m.body is not None else fetched[m.id] for m in messages]

    def in_group(self, group: str, *, status: str | None = None,
                 ingested_until: datetime | None = None, after: str | None = None,
                 page_size: int = 100) -> Iterator[FailedMessage]:
        """A group's messages in id order, streamed page by page (never all in memory)."""
        params: dict[str, Any] = {"pk": group}
        query = where("PartitionKey eq @pk", params, ("Status", "eq", "status", status),
                      ("IngestedAt", "le", "until", ingested_until),
                      ("RowKey", "gt", "after", after))
        for row in self._messages.query_entities(query, parameters=params,
                                                 results_per_page=page_size):
            yield _message(row)

    def count_in_group(self, group: str, *, ingested_until: datetime | None = None) -> int:
        """How many messages the group holds (ingested up to `ingested_until`): keys only, a
        thousand a page, no row read into memory."""
        params: dict[str, Any] = {"pk": group}
        query = where("PartitionKey eq @pk", params, ("IngestedAt", "le", "until", ingested_until))
        return sum(1 for _ in self._messages.query_entities(
            query, parameters=params, select=["RowKey"], results_per_page=1000))

    def messages_page(self, group: str, flt: MessageFilter | None = None, *, limit: int,
                      after: str | None = None) -> Page[FailedMessage]:
        """One page of a group's messages in id order; the continuation is the last id looked
        at, so a page resumes exactly there whatever the filter skipped."""
        flt = flt or MessageFilter()
        params: dict[str, Any] = {"pk": group}
        base = "PartitionKey eq @pk" + _conditions(flt, params)
        if not flt.reads_rows:
            return keyed_page(self._messages, base, params, limit=limit, after=after,
                              convert=_message, key=lambda m: m.id)
        found: list[FailedMessage] = []
        examined = 0
        last = after
        while examined < SCAN_BUDGET:
            query = base
            if last is not None:
                query += " and RowKey gt @after"
                params["after"] = last
            chunk = query_page(self._messages, query, parameters=params,
                               limit=min(_CHUNK, SCAN_BUDGET - examined))
            rows = [_message(r) for r in chunk.items]
            verdicts = [flt.metadata_match(m) for m in rows]
            unsure = [m.id for m, v in zip(rows, verdicts, strict=True) if v is None]
            texts = dict(zip(unsure, self._bodies_text(rows, unsure), strict=True))
            for message, verdict in zip(rows, verdicts, strict=True):
                examined += 1
                last = message.id
                if verdict is None:
                    verdict = (flt.text or "").casefold() in texts[message.id]
                if verdict:
                    found.append(message)
                    if len(found) >= limit:
                        return Page(found, encode_token({"after": last}))
            if chunk.continuation is None:
                return Page(found, None)
        return Page(found, encode_token({"after": last}) if last else None)

    def _bodies_text(self, rows: Sequence[FailedMessage], ids: Sequence[str]) -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        by_id = {m.id: m for m in rows}

        def one(message_id: str) -> str:
            message = by_id[message_id]
            try:
                body = message.body if message.body is not None else self.bodies.get(message_id)
            except ResourceNotFoundError:
                return ""
            return searchable(body, message.source_kind)

        remote = [i for i in ids if by_id[i].body is None]
        if not remote:
            return [one(i) for i in ids]
        with ThreadPoolExecutor(max_workers=min(16, len(remote))) as pool:
            return list(pool.map(one, ids))

    def status_counts(self, group: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self._messages.query_entities("PartitionKey eq @pk", parameters={"pk": group},
                                                 select=["Status"], results_per_page=1000):
            counts[row["Status"]] = counts.get(row["Status"], 0) + 1
        return counts

    def ingested_before(self, before: datetime) -> Iterator[FailedMessage]:
        """Every message ingested before `before`, whatever its group (a table scan)."""
        for row in self._messages.query_entities("IngestedAt lt @before",
                                                 parameters={"before": before},
                                                 results_per_page=1000):
            yield _message(row)

    def with_status(self, status: str) -> Iterator[FailedMessage]:
        for row in self._messages.query_entities("Status eq @s", parameters={"s": status}):
            yield _message(row)

    # ------------------------------------------------------------------ groups

    def record_arrivals(self, sample: FailedMessage, new: int, seen_at: datetime,
                        thresholds: Sequence[int], *, known: Group | None = None) -> Arrival:
        """Add `new` messages to the group, creating it on its first message. `known`: the
        group as this caller last wrote it; tried first (ETag-conditional) instead of reading
        it again, and read afresh only if someone changed it since."""
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode  # SDK on first use (cold start)

        for attempt in range(20):
            if known is not None and attempt == 0:
                group = replace(known)
            else:
                try:
                    group = _group(self._groups.get_entity(GROUP_PARTITION, sample.group))
                except ResourceNotFoundError:
                    group = Group(id=sample.group, source=sample.source, entity=sample.entity,
                                  cause=sample.cause, reason=sample.reason[:1000],
                                  description=sample.description[:4000], count=new,
                                  first_seen=seen_at, last_seen=seen_at)
                    group.notice_level = max(1, _level(new, thresholds))
                    try:
                        meta = self._groups.create_entity(_group_entity(group))
                    except ResourceExistsError:
                        continue
                    group.etag = meta["etag"]
                    return Arrival(group, created=True, before=0)
            before = group.count
            group.count += new
            group.last_seen = max(group.last_seen, seen_at)
            group.notice_level = max(group.notice_level, _level(group.count, thresholds))
            try:
                meta = self._groups.update_entity(
                    _group_entity(group), mode=UpdateMode.REPLACE, etag=group.etag,
                    match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # changed (or purged) since: read it again
            group.etag = meta["etag"]
            return Arrival(group, created=False, before=before)
        raise RetryLater(f"group {sample.group} is too busy; try again")

    def mark_notice_sent(self, group: Group, level: int) -> None:
        from azure.data.tables import UpdateMode  # SDK on first use (cold start)

        self._groups.update_entity(
            {"PartitionKey": GROUP_PARTITION, "RowKey": group.id, "NoticeSent": level},
            mode=UpdateMode.MERGE)

    def groups_page(self, *, limit: int, after: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    source: str | None = None, entity: str | None = None) -> Page[Group]:
        """Groups in id order, optionally only those last seen within [since, until), of one
        source, of one entity."""
        params: dict[str, Any] = {"pk": GROUP_PARTITION}
        query = where("PartitionKey eq @pk", params, ("LastSeen", "ge", "since", since),
                      ("LastSeen", "lt", "until", until), ("Source", "eq", "source", source),
                      ("Entity", "eq", "entity", entity))
        return keyed_page(self._groups, query, params, limit=limit, after=after,
                          convert=_group, key=lambda g: g.id)

    def delete_group(self, group_id: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        with contextlib.suppress(ResourceNotFoundError):
            self._groups.delete_entity(GROUP_PARTITION, group_id)

    def groups(self) -> Iterator[Group]:
        for row in self._groups.query_entities("PartitionKey eq @pk",
                                               parameters={"pk": GROUP_PARTITION}):
            yield _group(row)

    def group(self, group_id: str) -> Group:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        try:
            return _group(self._groups.get_entity(GROUP_PARTITION, group_id))
        except ResourceNotFoundError:
            raise NotFound("group", group_id) from None


def _conditions(flt: MessageFilter, params: dict[str, Any]) -> str:
    """The part of a listing's filter Table storage answers: status and ingest time."""
    return where("", params, ("Status", "eq", "status", flt.status),
                 ("IngestedAt", "ge", "since", flt.since), ("IngestedAt", "lt", "until", flt.until))


def _level(count: int, thresholds: Sequence[int]) -> int:
    """The highest threshold `count` has reached (0 below the first)."""
    reached = [t for t in thresholds if count >= t]
    return reached[-1] if reached else 0


def _digest(body: bytes) -> str:
    return sha256(body).hexdigest()


def _transactions(rows: Sequence[tuple[FailedMessage, dict[str, Any]]]
                  ) -> Iterator[list[tuple[FailedMessage, dict[str, Any]]]]:
    """Rows of one partition cut into transactions of at most 100 rows and about 3 MB."""
    chunk: list[tuple[FailedMessage, dict[str, Any]]] = []
    size = 0
    for message, entity in rows:
        weight = transactions.wire_size(entity)
        if chunk and (len(chunk) >= 100 or size + weight > _TRANSACTION_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((message, entity))
        size += weight
    if chunk:
        yield chunk


_COLUMNS = {"status": "Status", "replay_job": "ReplayJob", "replay_attempt": "ReplayAttempt",
            "replayed_at": "ReplayedAt", "replayed_to": "ReplayedTo",
            "sent_message_id": "SentMessageId", "possible_duplicate": "PossibleDuplicate",
            "archived_at": "ArchivedAt", "archived_by": "ArchivedBy", "edited_as": "EditedAs"}


def _changes(m: FailedMessage, fields: Sequence[str] | None) -> tuple[dict[str, Any], bool]:
    """The entity to send and whether to merge it: only the changed columns when every one
    has a value, else the whole row (replace)."""
    if fields:
        values = {_COLUMNS[f]: getattr(m, f) for f in fields}
        if all(v is not None for v in values.values()):
            return {"PartitionKey": m.group, "RowKey": m.id, **values}, True
    return _entity(m), False


def _entity(m: FailedMessage) -> dict[str, Any]:
    props = json.dumps({k: v for k, v in m.properties.items() if v is not None}, default=str)
    app_props = json.dumps(encode_properties(m.application_properties), default=str)
    if len(props) + len(app_props) > _MAX_TEXT:
        raise InvalidInput("properties", f"of message {m.id} exceed {_MAX_TEXT} characters; "
                           "it stays at its source")
    entity: dict[str, Any] = {
        "PartitionKey": m.group, "RowKey": m.id, "Source": m.source, "SourceKind": m.source_kind,
        "Entity": m.entity, "SourceKey": m.source_key[:1000], "Reason": m.reason[:1000],
        "Description": m.description[:4000], "Cause": m.cause, "Properties": props,
        "AppProperties": app_props, "BodySize": m.body_size, "BodySha256": m.body_sha256,
        "IngestedAt": m.ingested_at, "Status": m.status, "ReplayAttempt": m.replay_attempt,
        "PossibleDuplicate": m.possible_duplicate,
    }
    if m.preview is not None:
        entity["Preview"] = m.preview
    if m.body is not None:
        entity["Body"] = bytes(m.body)  # Edm.Binary
    optional = {
        "DeliveryCount": m.delivery_count, "EnqueuedTime": m.enqueued_time,
        "SequenceNumber": m.sequence_number, "ReplayJob": m.replay_job,
        "ReplayedAt": m.replayed_at, "ReplayedTo": m.replayed_to,
        "SentMessageId": m.sent_message_id, "EditOf": m.edit_of, "EditedAs": m.edited_as,
        "EditedBy": m.edited_by, "ArchivedAt": m.archived_at, "ArchivedBy": m.archived_by,
    }
    for key, value in optional.items():
        if value is not None:
            if key == "SequenceNumber":
                from azure.data.tables import EdmType, EntityProperty  # lazy (cold start)

                entity[key] = EntityProperty(value, EdmType.INT64)
                continue
            entity[key] = value
    return entity


def _message(row: Any) -> FailedMessage:
    seq = row.get("SequenceNumber")
    if seq is not None and not isinstance(seq, int):
        seq = int(getattr(seq, "value", seq))
    return FailedMessage(
        id=row["RowKey"], group=row["PartitionKey"], source=row["Source"],
        source_kind=row["SourceKind"], entity=row["Entity"], source_key=row["SourceKey"],
        reason=row["Reason"], description=row.get("Description") or "", cause=row["Cause"],
        properties=json.loads(row.get("Properties") or "{}"),
        application_properties=decode_properties(json.loads(row.get("AppProperties") or "[]")),
        delivery_count=row.get("DeliveryCount"), enqueued_time=row.get("EnqueuedTime"),
        sequence_number=seq, body_size=row.get("BodySize") or 0,
        body_sha256=row.get("BodySha256") or "", ingested_at=row["IngestedAt"],
        status=row["Status"], replay_job=row.get("ReplayJob"),
        replay_attempt=row.get("ReplayAttempt") or 0, replayed_at=row.get("ReplayedAt"),
        replayed_to=row.get("ReplayedTo"), sent_message_id=row.get("SentMessageId"),
        possible_duplicate=bool(row.get("PossibleDuplicate")), edit_of=row.get("EditOf"),
        edited_as=row.get("EditedAs"), edited_by=row.get("EditedBy"),
        archived_at=row.get("ArchivedAt"), archived_by=row.get("ArchivedBy"),
        preview=row.get("Preview"), etag=row_etag(row),
        body=bytes(row["Body"]) if row.get("Body") is not None else None,
    )


def _group_entity(g: Group) -> dict[str, Any]:
    return {
        "PartitionKey": GROUP_PARTITION, "RowKey": g.id, "Source": g.source, "Entity": g.entity,
        "Cause": g.cause, "Reason": g.reason, "Description": g.description, "Count": g.count,
        "FirstSeen": g.first_seen, "LastSeen": g.last_seen, "NoticeLevel": g.notice_level,
        "NoticeSent": g.notice_sent,
    }


def _group(row: Any) -> Group:
    return Group(
        id=row["RowKey"], source=row["Source"], entity=row["Entity"], cause=row["Cause"],
        reason=row.get("Reason") or "", description=row.get("Description") or "",
        count=row["Count"], first_seen=row["FirstSeen"], last_seen=row["LastSeen"],
        notice_level=row.get("NoticeLevel") or 0, notice_sent=row.get("NoticeSent") or 0,
        etag=row_etag(row),
    )
