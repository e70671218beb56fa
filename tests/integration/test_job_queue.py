"""The job queues (pitcrew.azure.queues.StorageJobQueue) against Azurite: a job wakes its trigger
on a queue made the first time a job is queued, and every later job costs one request."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pitcrew.azure.queues import StorageJobQueue
from tests.integration.test_round_trips import Wire


def _service(connection: str, wire: Wire | None = None) -> Any:
    from azure.storage.queue import QueueServiceClient

    extra = {"transport": wire.transport()} if wire is not None else {}
    return QueueServiceClient.from_connection_string(connection, **extra)


def _jobs(service: Any, queue: str) -> list[str]:
    return sorted(base64.b64decode(m.content).decode() for m in
                  service.get_queue_client(queue).receive_messages(messages_per_page=32))


def test_a_job_makes_its_queue_once_then_costs_one_request_each(
        storage_connection_string: str, unique_name: str) -> None:
    wire = Wire()
    service = _service(storage_connection_string, wire)
    jobs = StorageJobQueue(lambda: service, unique_name)
    jobs.enqueue("job-1")  # the queue does not exist yet: refused, made, sent again
    assert [method for method, _ in wire.requests] == ["POST", "PUT", "POST"]
    for n in (2, 3):
        wire.requests.clear()
        jobs.enqueue(f"job-{n}")
        assert [method for method, _ in wire.requests] == ["POST"]  # no create before a send
    jobs.enqueue("later", delay=30)
    assert _jobs(service, unique_name) == ["job-1", "job-2", "job-3"]  # "later" still invisible
    service.get_queue_client(unique_name).delete_queue()
    jobs.enqueue("after-delete")  # a queue deleted meanwhile is made again
    assert _jobs(service, unique_name) == ["after-delete"]


def test_jobs_queued_at_once_on_a_new_queue_all_arrive(
        storage_connection_string: str, unique_name: str) -> None:
    service = _service(storage_connection_string)
    jobs = StorageJobQueue(lambda: service, unique_name)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(jobs.enqueue, [f"job-{n}" for n in range(8)]))
    assert _jobs(service, unique_name) == [f"job-{n}" for n in range(8)]


def test_a_job_due_beyond_a_queue_messages_seven_days_is_queued_for_the_longest_it_can(
        storage_connection_string: str, unique_name: str) -> None:
    service = _service(storage_connection_string)
    jobs = StorageJobQueue(lambda: service, unique_name)
    jobs.enqueue("far", delay=30 * 86400)  # a group whose repeat_interval is 30 days
    jobs.enqueue("overdue", delay=-5)  # at once
    assert _jobs(service, unique_name) == ["overdue"]
