"""Reading an EndpointCredential token's audience: what the local endpoint compares with the
audiences each service accepts."""

from __future__ import annotations

import pytest

from pitcrew.endpoint_credential import EndpointCredential, audience_of, principal_from_token


@pytest.mark.parametrize(("scopes", "audience"), [
    (("https://vault.azure.net/.default",), "https://vault.azure.net"),
    (("https://management.core.windows.net//.default",), "https://management.core.windows.net"),
    (("https://Management.Azure.com/",), "https://Management.Azure.com"),
    # Several scopes of one resource are one audience; of several resources, none (Entra ID
    # issues no such token).
    (("https://vault.azure.net/.default", "https://VAULT.azure.net//.default"),
     "https://vault.azure.net"),
    (("https://vault.azure.net/.default", "https://management.azure.com/.default"), None),
])
def test_audience_is_the_scope_without_default_and_trailing_slashes(
        scopes: tuple[str, ...], audience: str | None) -> None:
    token = EndpointCredential("alice").get_token(*scopes).token
    assert audience_of(token) == audience
    assert principal_from_token(token) == "alice"


@pytest.mark.parametrize("token", ["anything", "local.e30", "local.!!!", "local.WzFd"])
def test_a_token_without_a_readable_scope_has_no_audience(token: str) -> None:
    assert audience_of(token) is None
    assert principal_from_token(token) == "unknown"
