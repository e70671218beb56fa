"""Fixtures of the rotation tests: the local Azure endpoint, a stand-in topic, the world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pitcrew_dev.azure_endpoint import LocalAzure, start_local_azure
from tests.integration.rotation_support import VAULT, RotationWorld
from tests.receiver import Receiver


@pytest.fixture(scope="module")
def local_azure() -> Iterator[LocalAzure]:
    with start_local_azure(config={"vaults": [VAULT]}) as endpoint:
        yield endpoint


@pytest.fixture
def topic() -> Iterator[Receiver]:
    """Stands in for the Event Grid topic (access-key auth over loopback)."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def world(
    pitcrew_env: Path, local_azure: LocalAzure, receiver: Receiver, topic: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> RotationWorld:
    env = local_azure.environment()
    for name in ("PITCREW_LOCAL_AZURE_URL", "PITCREW_LOCAL_AZURE_CA", "PITCREW_LOCAL_AZURE_VAULTS"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("PITCREW_EVENTGRID_TOPIC_ENDPOINT", topic.url)
    monkeypatch.setenv("PITCREW_EVENTGRID_TOPIC_KEY", "local-topic-key")
    w = RotationWorld(local_azure, pitcrew_env, receiver.url)
    w.write_policy()
    return w


