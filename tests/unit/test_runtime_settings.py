"""The local Azure endpoint setting cannot point the app's identity at another host."""

from __future__ import annotations

import pytest

from pitcrew.errors import ConfigurationError
from pitcrew.runtime import Runtime, Settings


@pytest.mark.parametrize(
    "url", ["https://attacker.example", "http://127.0.0.1:8443", "https://10.0.0.5:8443"]
)
def test_a_non_loopback_local_azure_url_is_refused(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PITCREW_LOCAL_AZURE_URL", url)
    runtime = Runtime(Settings.from_env({}))
    with pytest.raises(ConfigurationError, match="loopback"):
        runtime.local_azure_url()


def test_loopback_https_is_the_local_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITCREW_LOCAL_AZURE_URL", "https://127.0.0.1:8443/")
    assert Runtime(Settings.from_env({})).local_azure_url() == "https://127.0.0.1:8443"
