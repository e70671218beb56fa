"""The local Azure endpoint's Key Vault keys and certificates, through the real SDK clients:
list properties, rotation policies (as strict as Key Vault), rotate, create a certificate and
follow its pending operation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from azure.keyvault.keys import KeyClient, KeyRotationLifetimeAction, KeyRotationPolicy

from pitcrew_dev.azure_endpoint import LocalAzure, LocalCredential, start_local_azure

VAULT = "kc-kv"
NOW = int(time.time())


@pytest.fixture(scope="module")
def local() -> Iterator[LocalAzure]:
    config: dict[str, Any] = {
        "vaults": [VAULT],
        "keys": {VAULT: {"signing": {"exp": NOW + 5 * 86400}}},
        "certificates": {VAULT: {
            "edge-self": {"exp": NOW + 3 * 86400, "issuer": "Self", "created": NOW - 86400 * 300},
            "edge-digi": {"issuer": "digi", "validity_months": 12},
        }},
        "issuers": {VAULT: {"digi": "DigiCert"}},
    }
    with start_local_azure(config=config) as endpoint:
        yield endpoint


def _keys(local: LocalAzure) -> KeyClient:
    return KeyClient(local.vault_url(VAULT), LocalCredential("test"),
                     **local.keyvault_client_kwargs())


def _certificates(local: LocalAzure) -> CertificateClient:
    return CertificateClient(local.vault_url(VAULT), LocalCredential("test"),
                             **local.keyvault_client_kwargs())


def test_keys_list_rotate_and_policy(local: LocalAzure) -> None:
    client = _keys(local)
    listed = {k.name: k for k in client.list_properties_of_keys()}
    assert listed["signing"].expires_on is not None and listed["signing"].version is None
    before = client.get_key("signing").properties.version
    # Key Vault's default policy when none was set: Notify 30 days before expiry.
    default = client.get_key_rotation_policy("signing")
    assert [str(getattr(a.action, "value", a.action)).lower()
            for a in default.lifetime_actions] == ["notify"]
    client.update_key_rotation_policy("signing", KeyRotationPolicy(), expires_in="P90D",
                                      lifetime_actions=[KeyRotationLifetimeAction(
                                          "Rotate", time_before_expiry="P30D")])
    assert client.get_key_rotation_policy("signing").expires_in == "P90D"
    rotated = client.rotate_key("signing")
    assert rotated.properties.version != before
    assert rotated.properties.expires_on is not None  # expiryTime of the policy
    assert local.vault_operations(VAULT)["keys"]["signing"] == 1


@pytest.mark.parametrize("expires_in,action,problem", [
    ("P7D", KeyRotationLifetimeAction("Rotate", time_before_expiry="P1D"), "expiryTime"),
    ("P90D", KeyRotationLifetimeAction("Rotate", time_before_expiry="P3D"), "P7D"),
    ("P90D", KeyRotationLifetimeAction("Rotate", time_before_expiry="P88D"), "shorter"),
    ("P90D", KeyRotationLifetimeAction("Notify", time_after_create="P30D"), "Notify"),
    (None, KeyRotationLifetimeAction("Rotate", time_before_expiry="P30D"), "expiryTime"),
])
def test_a_rotation_policy_key_vault_refuses_is_refused(
        local: LocalAzure, expires_in: str | None, action: Any, problem: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        _keys(local).update_key_rotation_policy("signing", KeyRotationPolicy(),
                                                expires_in=expires_in, lifetime_actions=[action])
    assert caught.value.status_code == 400
    assert caught.value.error is not None and caught.value.error.code == "BadParameter"
    assert problem in str(caught.value.message)


def test_unknown_key_is_key_not_found(local: LocalAzure) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        _keys(local).rotate_key("nope")
    assert caught.value.error is not None and caught.value.error.code == "KeyNotFound"


def test_certificates_policy_and_renewal(local: LocalAzure) -> None:
    client = _certificates(local)
    listed = {c.name: c for c in client.list_properties_of_certificates()}
    assert set(listed) >= {"edge-self", "edge-digi"}
    policy = client.get_certificate_policy("edge-self")
    assert policy.issuer_name == "Self"
    assert policy.lifetime_actions[0].lifetime_percentage == 80
    assert client.get_issuer("digi").provider == "DigiCert"
    with pytest.raises(ResourceNotFoundError):
        client.get_certificate_operation("edge-self")  # nothing pending yet
    before = client.get_certificate("edge-self").properties.version
    client.begin_create_certificate("edge-self", policy)
    assert client.get_certificate_operation("edge-self").status == "completed"
    after = client.get_certificate("edge-self").properties
    assert after.version != before and after.expires_on is not None
    assert local.vault_operations(VAULT)["certificates"]["edge-self"] == 1


def test_certificate_create_refusals(local: LocalAzure) -> None:
    client = _certificates(local)
    with pytest.raises(HttpResponseError) as caught:
        client.begin_create_certificate(
            "edge-x", CertificatePolicy(issuer_name="no-such-issuer", subject="CN=x"))
    assert caught.value.status_code == 400
    # Issuer Unknown stays pending until merged; a second create conflicts.
    client.begin_create_certificate("edge-ext", CertificatePolicy(issuer_name="Unknown",
                                                                  subject="CN=ext"))
    assert client.get_certificate_operation("edge-ext").status == "inProgress"
    with pytest.raises(HttpResponseError) as conflict:
        client.begin_create_certificate("edge-ext", CertificatePolicy(issuer_name="Unknown",
                                                                      subject="CN=ext"))
    assert conflict.value.status_code == 409
