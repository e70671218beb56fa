"""The job queues (pitcrew.azure.queues.StorageJobQueue) against Azurite: a job wakes its trigger
on a queue made the first time a job is queued, and every later job costs one request."""

from __future__ import annotations

import base64
import threading
from typing import Any

from pitcrew.azure.queues import StorageJobQueue


class Counting:
    """An azure-core transport recording the method of each request it sends."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self.lock = threading.Lock()

    def transport(self) -> Any:
        from azure.core.pipeline.transport import RequestsTransport

        counting = self

        class Transport(RequestsTransport):  # type: ignore[misc]
            def send(self, request: Any, **kwargs: Any) -> Any:
                with counting.lock:
                    counting.methods.append(request.method)
                return super().send(request, **kwargs)

        return Transport()


def test_a_job_makes_its_queue_once_then_costs_one_request_each(
        storage_connection_string: str, unique_name: str) -> None:
    from azure.storage.queue import QueueServiceClient

    wire = Counting()
    service = QueueServiceClient.from_connection_string(storage_connection_string,
                                                        transport=wire.transport())
    jobs = StorageJobQueue(lambda: service, unique_name)
    jobs.enqueue("job-1")  # the queue does not exist yet: refused, made, sent again
    assert wire.methods == ["POST", "PUT", "POST"]
    for n in (2, 3):
        wire.methods.clear()
        jobs.enqueue(f"job-{n}")
        assert wire.methods == ["POST"]  # no create before each send
    jobs.enqueue("later", delay=30)
    received = [base64.b64decode(m.content).decode()
                for m in service.get_queue_client(unique_name).receive_messages(
                    messages_per_page=32)]
    assert sorted(received) == ["job-1", "job-2", "job-3"]  # "later" still invisible
    service.get_queue_client(unique_name).delete_queue()
    jobs.enqueue("after-delete")  # a queue deleted meanwhile is made again
    assert [base64.b64decode(m.content).decode() for m in
            service.get_queue_client(unique_name).receive_messages()] == ["after-delete"]
