"""Run a function over items a few at a time in threads (the SDK clients are thread-safe and
the work is I/O bound), each call in a copy of the caller's context so that what a caller set
up for a whole batch (a deferred audit log, a silences snapshot) reaches every thread."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_in_threads(work: Callable[[Item], Result], items: Sequence[Item], *,
                   concurrency: int) -> list[Result | Exception]:
    """`work` over `items`, at most `concurrency` at a time; each result, or the exception its
    call raised, in the order of `items`. Every call runs to its end, whatever the others do."""
    if concurrency <= 1 or len(items) <= 1:
        return [_call(work, item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, _call, work, item)
                   for item in items]
    return [future.result() for future in futures]


def _call(work: Callable[[Item], Result], item: Item) -> Result | Exception:
    try:
        return work(item)
    except Exception as exc:
        return exc
