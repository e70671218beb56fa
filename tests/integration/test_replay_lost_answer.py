"""A replay send whose answer is lost after the queue took the message: the Storage SDK sends it
again, so the target holds it twice. pitcrew cannot prevent that (a queue message carries no
id to deduplicate on) but says so: the sender counts it and logs a warning naming the target.
Against Azurite, the failure injected in the transport after the request was answered."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from pitcrew.azure.queues import QueueSender


@dataclass
class _Item:
    body: bytes


@pytest.mark.azurite
def test_a_send_whose_answer_is_lost_is_counted_and_said(
    storage_connection_string: str, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    from azure.core.exceptions import ServiceResponseError
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.queue import LinearRetry, QueueServiceClient

    lost: list[str] = []

    class LosesOneAnswer(RequestsTransport):  # type: ignore[misc]
        def send(self, request: Any, **kwargs: Any) -> Any:
            response = super().send(request, **kwargs)  # the queue has the message now
            if request.method == "POST" and not lost:
                lost.append(request.url)
                raise ServiceResponseError("connection reset after the request (injected)")
            return response

    service = QueueServiceClient.from_connection_string(
        storage_connection_string, transport=LosesOneAnswer(),
        retry_policy=LinearRetry(backoff=0, random_jitter_range=0))
    service.get_queue_client(unique_name).create_queue()  # the target exists: never made
    sender = QueueSender(service, unique_name, concurrency=2)
    with caplog.at_level(logging.WARNING, logger="pitcrew.azure.queues"):
        doubled = sender.send_batch([_Item(b"one"), _Item(b"two"), _Item(b"three")])
    sender.close()
    assert lost, "the injected failure happened"
    assert len(doubled) == 1 and doubled <= {0, 1, 2}  # which one: said, for the store
    held = service.get_queue_client(unique_name).get_queue_properties().approximate_message_count
    assert held == 4  # the message whose answer was lost, twice: the SDK sent it again
    assert sender.possible_duplicates == 1
    [warning] = [r.getMessage() for r in caplog.records if "answer was lost" in r.getMessage()]
    assert f"queue:{unique_name}" in warning and "ServiceResponseError" in warning
    assert all(f"'{body}'" not in warning for body in ("one", "two", "three"))  # no body


@pytest.mark.azurite
def test_a_send_that_never_reached_the_queue_is_not_counted(
    storage_connection_string: str, unique_name: str
) -> None:
    from azure.core.exceptions import ServiceRequestError
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.queue import LinearRetry, QueueServiceClient

    refused: list[str] = []

    class RefusesOnce(RequestsTransport):  # type: ignore[misc]
        def send(self, request: Any, **kwargs: Any) -> Any:
            if request.method == "POST" and not refused:
                refused.append(request.url)
                raise ServiceRequestError("connection refused (injected)")
            return super().send(request, **kwargs)

    service = QueueServiceClient.from_connection_string(
        storage_connection_string, transport=RefusesOnce(),
        retry_policy=LinearRetry(backoff=0, random_jitter_range=0))
    service.get_queue_client(unique_name).create_queue()
    sender = QueueSender(service, unique_name, concurrency=1)
    assert sender.send_batch([_Item(b"one"), _Item(b"two")]) == set()
    sender.close()
    held = service.get_queue_client(unique_name).get_queue_properties().approximate_message_count
    assert refused and held == 2
    assert sender.possible_duplicates == 0
