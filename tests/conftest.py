"""Shared fixtures. Storage tests run against a real Azurite, started once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from pitcrew.local.azurite import Azurite, ensure_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    handle = ensure_azurite()
    yield handle
    if handle.started:
        handle.stop()


@pytest.fixture
def storage_connection_string(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    return azurite.connection_string


@pytest.fixture
def unique_name() -> str:
    """A name valid for tables, queues and containers, unique per test, so tests share Azurite."""
    return "t" + uuid.uuid4().hex[:16]


@pytest.fixture(autouse=True)
def _no_real_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must never reach a real subscription through ambient credentials.
    for name in ("AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    os.environ.setdefault("PITCREW_ENVIRONMENT", "test")
