"""Single-row writes from concurrent callers to one partition, sent together (group commit).

Every request pitcrew handles alone (an Azure Monitor alert, a one-event Event Grid delivery)
writes rows in partitions that all requests share: its claim and completion (`claims`,
partition = scope), its group row (`alertgroups`, partition "group"), its outbox row
(`outbox`, partition = channel) and its audit record (`audit`, partition = day). Under an alert
storm dozens of such writes to one partition are in flight at once, each a request of its own
at about 2 ms of SDK CPU. `GroupCommitTable` wraps a TableClient so that `create_entity` and
`update_entity` calls overlapping in time on one partition go as one entity-group transaction
(pitcrew.azure.tables.changeset), while each caller still gets exactly what its own call
would have given:

- nothing else in flight on the partition (fewer than `slots` writes): the call goes alone,
  at once, through the SDK, as before;
- otherwise it waits for a slot; whoever takes the slot sends every write queued by then
  (up to 100 rows and MAX_BYTES, one write per row key), and:
  - applied: each caller gets its row's new ETag;
  - refused, so not applied (one row exists, one ETag is stale): each caller makes its own
    call through the SDK and gets the SDK's own answer or error for its row;
  - unknown (a server error after the pipeline's retries, a lost answer): each caller gets
    the error, as its own call would have raised it. It is never retried here: the
    transaction may have been applied.

Reads and every other method go straight to the wrapped client.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pitcrew.azure.tables import changeset, transactions

if TYPE_CHECKING:
    from azure.data.tables import TableClient

# Writes in flight on one partition before the next ones queue: a few, so that a lone caller
# never waits, and the rest share transactions once the partition is busy.
SLOTS = 2


class _Write:
    __slots__ = ("alone", "error", "lead", "operation", "ready", "result")

    def __init__(self, operation: tuple[Any, ...]) -> None:
        self.operation = operation
        self.ready = threading.Event()
        self.lead = False  # handed a slot: send what is queued
        self.result: Mapping[str, Any] | None = None
        self.error: BaseException | None = None
        self.alone = False  # refused in a transaction: make the call alone

    @property
    def row(self) -> str:
        return str(self.operation[1]["RowKey"])


class _Partition:
    __slots__ = ("busy", "queue")

    def __init__(self) -> None:
        self.busy = 0
        self.queue: deque[_Write] = deque()


class GroupCommitTable:
    """A TableClient whose create_entity and update_entity share transactions when they overlap
    on a partition (see the module); everything else is the wrapped client's."""

    def __init__(self, table: TableClient, *, slots: int = SLOTS) -> None:
        self._table = table
        self._slots = slots
        self._lock = threading.Lock()
        self._partitions: dict[str, _Partition] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def create_entity(self, entity: Mapping[str, Any], **kwargs: Any) -> Mapping[str, Any]:
        if kwargs:  # options a transaction cannot carry: the call goes alone
            return self._table.create_entity(entity, **kwargs)
        return self._write(("create", entity))

    def update_entity(self, entity: Mapping[str, Any], mode: Any = None, **kwargs: Any
                      ) -> Mapping[str, Any]:
        options = dict(kwargs)
        if mode is not None:
            options["mode"] = mode
        if set(options) - {"mode", "etag", "match_condition"}:
            return self._table.update_entity(entity, **options)
        return self._write(("update", entity, options))

    def _write(self, operation: tuple[Any, ...]) -> Mapping[str, Any]:
        mine = _Write(operation)
        key = str(operation[1]["PartitionKey"])
        with self._lock:
            partition = self._partitions.setdefault(key, _Partition())
            if partition.busy < self._slots:
                partition.busy += 1
                alone = True
            else:
                partition.queue.append(mine)
                alone = False
        if alone:
            try:
                return self._single(operation)
            finally:
                self._hand_on(key)
        mine.ready.wait()
        if mine.lead:  # handed a slot: send mine with what queued behind it
            batch = self._take(key, mine)
            if len(batch) == 1:
                try:
                    return self._single(operation)
                finally:
                    self._hand_on(key)
            self._send(key, batch)
        if mine.error is not None:
            raise _again(mine.error)
        if mine.alone:
            return self._single(operation)
        assert mine.result is not None
        return mine.result

    def _take(self, key: str, mine: _Write) -> list[_Write]:
        """`mine` and the queued writes that fit one transaction with it (one per row key)."""
        with self._lock:
            partition = self._partitions[key]
            batch = [mine]
            rows = {mine.row}
            size = transactions.wire_size(mine.operation[1])
            kept: deque[_Write] = deque()
            while partition.queue and len(batch) < transactions.MAX_OPERATIONS:
                write = partition.queue.popleft()
                cost = transactions.wire_size(write.operation[1])
                if write.row in rows or size + cost > transactions.MAX_BYTES:
                    kept.append(write)
                    continue
                batch.append(write)
                rows.add(write.row)
                size += cost
            kept.extend(partition.queue)
            partition.queue = kept
            return batch

    def _send(self, key: str, batch: list[_Write]) -> None:
        """One transaction for `batch`; each write gets its result, or is told to go alone
        (refused, not applied), or gets the error (outcome unknown). Then the slot moves on."""
        try:
            try:
                results = changeset.attempt(self._table, [w.operation for w in batch])
            except BaseException as exc:
                for write in batch:
                    write.error = exc
                return
            if results is None:
                for write in batch:
                    write.alone = True
                return
            for write, result in zip(batch, results, strict=True):
                write.result = result
        finally:
            for write in batch[1:]:
                write.ready.set()
            self._hand_on(key)

    def _hand_on(self, key: str) -> None:
        """Give the slot to the first queued write, or free it."""
        with self._lock:
            partition = self._partitions[key]
            if partition.queue:
                following = partition.queue.popleft()
                following.lead = True
                following.ready.set()
                return
            partition.busy -= 1
            if not partition.busy:
                del self._partitions[key]

    def _single(self, operation: tuple[Any, ...]) -> Mapping[str, Any]:
        if operation[0] == "create":
            return self._table.create_entity(operation[1])
        return self._table.update_entity(operation[1], **operation[2])


def _again(error: BaseException) -> BaseException:
    """The error a caller raises for a transaction it shared: a copy (its type, message and
    attributes such as status_code; one exception object raised in many threads would share
    a traceback), chained to the original."""
    try:
        again = copy.copy(error)
    except Exception:
        return error
    again.__cause__ = error
    return again
