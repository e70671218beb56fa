"""A Function App logs at INFO, where azure-core's HttpLoggingPolicy writes every request and
answer: pitcrew keeps those records out unless PITCREW_SDK_HTTP_LOGGING asks for them."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from pitcrew.errors import ConfigurationError
from pitcrew.runtime import SDK_HTTP_LOGGER, Settings, get_runtime, reset_runtime


def _sdk_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    get_runtime().table("logs").create_entity(
        {"PartitionKey": "p", "RowKey": uuid.uuid4().hex})
    return [r.getMessage() for r in caplog.records if r.name == SDK_HTTP_LOGGER]


def test_storage_calls_write_no_sdk_http_records_at_info(
    pitcrew_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert _sdk_records(caplog) == []


def test_the_setting_brings_them_back_for_troubleshooting(
    pitcrew_env: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PITCREW_SDK_HTTP_LOGGING", "true")
    reset_runtime()
    caplog.set_level(logging.INFO)
    try:
        records = _sdk_records(caplog)
    finally:
        monkeypatch.delenv("PITCREW_SDK_HTTP_LOGGING")
        reset_runtime()
        get_runtime()  # quiet again for the tests that follow
    assert any("Request URL" in record for record in records)


def test_a_setting_that_is_not_a_flag_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="PITCREW_SDK_HTTP_LOGGING"):
        Settings.from_env({"PITCREW_SDK_HTTP_LOGGING": "verbose"})


def test_a_receivers_url_never_reaches_the_log(
    pitcrew_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs each request's URL at INFO; a webhook's URL is its secret."""
    import httpx

    from tests.integration.http_peer import Peer

    get_runtime()
    caplog.set_level(logging.INFO)
    peer = Peer()
    try:
        with httpx.Client() as client:
            client.post(f"{peer.url}/services/T000/B000/XOXSECRETTOKEN", json={"text": "hi"})
    finally:
        peer.close()
    assert not [r for r in caplog.records if "XOXSECRETTOKEN" in r.getMessage()]
