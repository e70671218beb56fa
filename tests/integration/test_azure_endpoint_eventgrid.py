"""The local Azure endpoint's Event Grid topic, reached by the real EventGridPublisherClient."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient

from pitcrew_dev.azure_endpoint import LocalAzure, LocalCredential, start_local_azure


def _tls(local_azure: LocalAzure) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(local_azure.ca_path))


@pytest.fixture(scope="module")
def local_azure() -> Iterator[LocalAzure]:
    with start_local_azure() as endpoint:
        yield endpoint


def test_publish_with_identity_and_with_key(
    local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = local_azure.topic_endpoint("consumers")
    # EventGridPublisherClient does not pass connection_verify to its transport; the CA bundle
    # in the environment is what `pitcrew dev` provides (LocalAzure.environment()).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(local_azure.ca_bundle_path))
    with_identity = EventGridPublisherClient(endpoint, LocalCredential())
    with_identity.send(
        [
            CloudEvent(
                source="/pitcrew",
                type="pitcrew.SecretRotated",
                data={"secret": "s1"},
                subject="kv/secrets/s1",
            )
        ]
    )
    with_key = EventGridPublisherClient(endpoint, AzureKeyCredential("local-key"))
    with_key.send([CloudEvent(source="/pitcrew", type="pitcrew.Test", data=None)])
    events = local_azure.published_events("consumers")
    assert [e["type"] for e in events] == ["pitcrew.SecretRotated", "pitcrew.Test"]
    assert events[0]["specversion"] == "1.0" and events[0]["data"] == {"secret": "s1"}
    assert local_azure.published_events("elsewhere") == []
    listed = httpx.get(
        f"{local_azure.url}/_local/events", params={"topic": "consumers"}, verify=_tls(local_azure)
    ).json()
    assert [e["id"] for e in listed] == [e["id"] for e in events]


def test_publish_without_credentials_is_refused(local_azure: LocalAzure) -> None:
    response = httpx.post(
        local_azure.topic_endpoint(),
        json=[{"id": "1"}],
        verify=_tls(local_azure),
    )
    assert response.status_code == 401
    bad = httpx.post(
        local_azure.topic_endpoint(),
        content=b"{}",
        headers={"aeg-sas-key": "k"},
        verify=_tls(local_azure),
    )
    assert bad.status_code == 400
