"""Azure Storage queues: poison queues as a dead-letter source, queues as replay targets, and
the queue that starts replay jobs."""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pitcrew.deadletter.grouping import group_id, message_id, normalise_cause
from pitcrew.deadletter.model import Captured, FailedMessage, TargetMissing

log = logging.getLogger(__name__)

POISON_SUFFIX = "-poison"
POISON_REASON = "MaxDequeueCountExceeded"
REPLAY_JOBS_QUEUE = "pitcrew-replay-jobs"
SCAN_JOBS_QUEUE = "pitcrew-scan-jobs"
MAX_VISIBILITY_SECONDS = 7 * 86400 - 60  # a queue message may stay invisible up to 7 days
# A received poison message stays invisible this long; ingest stores and deletes it well within.
_LEASE_SECONDS = 300


class PoisonQueueSource:
    """`<queue>-poison`: what the Functions queue trigger moved aside after maxDequeueCount
    failed attempts. A storage queue message has no properties: its text is the whole message,
    kept byte for byte."""

    concurrent_settle = True  # deletes are independent HTTP calls

    def __init__(self, service: Any, *, name: str, queue: str, entity: str) -> None:
        self._name = name
        self._queue = queue
        self._entity = entity
        self._client = service.get_queue_client(queue + POISON_SUFFIX)
        self._account = getattr(service, "account_name", "") or ""

    def receive(self, max_messages: int) -> Iterator[list[Captured]]:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        taken = 0
        while taken < max_messages:
            want = min(32, max_messages - taken)
            try:
                batch = list(self._client.receive_messages(
                    messages_per_page=want, max_messages=want, visibility_timeout=_LEASE_SECONDS,
                ))
            except ResourceNotFoundError:
                return  # no poison queue: nothing ever failed
            if not batch:
                return
            taken += len(batch)
            yield [self._capture(m) for m in batch]

    def _capture(self, raw: Any) -> Captured:
        description = (
            f"moved to {self._queue}{POISON_SUFFIX} by the queue trigger after maxDequeueCount "
            "failed attempts"
        )
        cause = normalise_cause(POISON_REASON, description)
        group = group_id(self._entity, cause)
        key = f"storage:{self._account}/{self._queue}{POISON_SUFFIX}#{raw.id}"
        message = FailedMessage(
            id=message_id(group, key), group=group, source=self._name,
            source_kind="storage-queue", entity=self._entity, source_key=key,
            reason=POISON_REASON, description=description, cause=cause,
            properties={"message_id": raw.id},
            delivery_count=None,
            enqueued_time=raw.inserted_on,
        )
        body = (raw.content or "").encode("utf-8")
        pop = raw.pop_receipt
        return Captured(message, body, settle=lambda: self._delete(raw.id, pop))

    def _delete(self, message_id: str, pop_receipt: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        with contextlib.suppress(ResourceNotFoundError):  # already deleted: settled before
            self._client.delete_message(message_id, pop_receipt)


class QueueSender:
    """Replays onto a storage queue: the text goes back exactly as it was. Storage queue
    messages carry no properties, so the replay link lives in the failed-message store."""

    supports_properties = False

    def __init__(self, service: Any, queue: str, *, concurrency: int = 16) -> None:
        self.target = f"queue:{queue}"
        self._client = service.get_queue_client(queue)
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dlq-send")
        self.possible_duplicates = 0  # sends the SDK repeated after a lost answer
        self._doubled: set[int] = set()  # id() of the items of running send_batch calls
        self._counting = threading.Lock()

    def send_batch(self, items: Sequence[Any]) -> set[int]:
        """Send every item; raise after all were attempted if any failed (the first, in
        order). Returns the positions of the items the SDK sent again after a lost answer
        (each may be in the queue twice). Each worker sends a run of items: one task per
        worker, not per message (a future per message cost as much CPU as a tenth of the
        send itself). The queue must exist: pitcrew never creates one in the workload; a
        missing queue raises TargetMissing (permanent: no retry makes it appear)."""
        size = -(-len(items) // self._concurrency)  # ceil: at most `concurrency` runs
        runs = [items[i:i + size] for i in range(0, len(items), size)] if items else []
        errors = [e for run in self._pool.map(self._send_run, runs) for e in run]
        with self._counting:
            doubled = {i for i, item in enumerate(items) if id(item) in self._doubled}
            self._doubled.difference_update(id(item) for item in items)
        if errors:
            raise _translated(errors[0], self.target)
        return doubled

    def _send_run(self, items: Sequence[Any]) -> list[Exception]:
        return [e for e in map(self._send_one, items) if e is not None]

    def _send_one(self, item: Any) -> Exception | None:
        def sent_again(**kwargs: Any) -> None:
            if self._sent_again(**kwargs):
                with self._counting:
                    self._doubled.add(id(item))  # the item lives until send_batch returns

        try:
            self._client.send_message(_text(item.body), retry_hook=sent_again)
        except Exception as exc:
            return exc
        return None

    def _sent_again(self, *, error: Exception | None = None, response: Any = None,
                    **_: Any) -> bool:
        """The Storage SDK sends a message again after any failure, also when the request
        reached the queue and only its answer was lost (a reset connection, a read timeout, a
        5xx): the queue may then hold it twice, unmarked (a queue message has no properties).
        Said where an operator looks; never the body. True when the send may be doubled."""
        from azure.core.exceptions import ServiceRequestError  # SDK on first use (cold start)

        if isinstance(error, ServiceRequestError):
            return False  # never reached the service: nothing can be doubled
        with self._counting:
            self.possible_duplicates += 1
        why = type(error).__name__ if error is not None else getattr(response, "status_code", "")
        log.warning("replay to %s: a send's answer was lost (%s) and the SDK sends it again; "
                    "the queue may receive that message twice", self.target, why)
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _translated(exc: Exception, target: str) -> Exception:
    """The SDK's 404 for a queue that does not exist (QueueNotFound) as the engine's permanent
    TargetMissing; any other failure as it came (the engine retries it as transient)."""
    from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

    if isinstance(exc, ResourceNotFoundError):
        code = getattr(exc, "error_code", None) or "404"
        missing = TargetMissing(f"the queue does not exist ({code}); pitcrew never creates "
                                "one: create it, or replay elsewhere")
        missing.__cause__ = exc
        return missing
    return exc


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body).decode()  # the Functions trigger decodes base64


class StorageJobQueue:
    """A JobQueue (pitcrew.deadletter.ports) over one storage queue. `service` builds the
    QueueServiceClient on first use (a request that queues no job never builds one)."""

    def __init__(self, service: Callable[[], Any], queue: str) -> None:
        self._service = service
        self.queue = queue

    def enqueue(self, job_id: str, *, delay: float = 0) -> None:
        enqueue_job(self._service(), self.queue, job_id, delay=delay)


def enqueue_job(service: Any, queue: str, job_id: str, *, delay: float = 0) -> None:
    """Wake a queue trigger with a job id (base64, the trigger's default encoding), now or
    after `delay` seconds (the message stays invisible until then; at most the 7 days a
    queue allows)."""
    from azure.core.exceptions import (  # SDK on first use (cold start)
        ResourceExistsError,
        ResourceNotFoundError,
    )

    client = service.get_queue_client(queue)
    message = base64.b64encode(job_id.encode()).decode()
    wait = math.ceil(min(max(0.0, delay), MAX_VISIBILITY_SECONDS))
    try:
        client.send_message(message, visibility_timeout=wait or None)
    except ResourceNotFoundError:
        # The queue is made the first time a job is queued on it (one round trip a job, not
        # two: asking to create it before every send answered 409 every time but the first).
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        client.send_message(message, visibility_timeout=wait or None)
