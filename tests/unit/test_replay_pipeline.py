"""The replay worker's read-ahead and the queue sender's runs keep order, count and errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pitcrew.azure.queues import QueueSender
from pitcrew.deadletter.replay import _read_ahead


def test_read_ahead_yields_every_batch_in_order_one_ahead() -> None:
    read: list[int] = []

    def batches() -> Iterator[list[Any]]:
        for i in range(5):
            read.append(i)
            yield [(i, None)]

    seen = []
    for batch in _read_ahead(batches()):
        seen.append(batch[0][0])
        assert len(read) <= len(seen) + 1  # at most one batch held beyond the current one
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_raises_a_read_error_where_the_batch_was_due() -> None:
    def batches() -> Iterator[list[Any]]:
        yield [(0, None)]
        raise ConnectionError("page read failed")

    walk = _read_ahead(batches())
    assert next(walk) == [(0, None)]
    with pytest.raises(ConnectionError, match="page read failed"):
        next(walk)


@dataclass
class _Item:
    body: bytes


class _Client:
    def __init__(self, fail: set[str]) -> None:
        self.sent: list[str] = []
        self.fail = fail
        self._lock = threading.Lock()

    def send_message(self, text: str, **options: Any) -> None:
        if text in self.fail:
            raise RuntimeError(f"refused {text}")
        with self._lock:
            self.sent.append(text)


class _Service:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def get_queue_client(self, name: str) -> _Client:
        return self.client


@pytest.mark.parametrize("count", [1, 3, 7, 100])
def test_queue_sender_sends_every_item_of_a_batch(count: int) -> None:
    client = _Client(fail=set())
    sender = QueueSender(_Service(client), "orders", concurrency=3)
    sender._ensured = True  # no queue to create here
    sender.send_batch([_Item(f"m{i}".encode()) for i in range(count)])
    sender.close()
    assert sorted(client.sent) == sorted(f"m{i}" for i in range(count))


def test_queue_sender_attempts_all_then_raises_the_first_failure() -> None:
    client = _Client(fail={"m2", "m5"})
    sender = QueueSender(_Service(client), "orders", concurrency=3)
    sender._ensured = True
    with pytest.raises(RuntimeError, match="refused m2"):
        sender.send_batch([_Item(f"m{i}".encode()) for i in range(8)])
    sender.close()
    assert sorted(client.sent) == sorted(f"m{i}" for i in range(8) if i not in (2, 5))
