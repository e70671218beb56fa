"""Key Vault certificates: the CertificateStore port (pitcrew.housekeeping.ports) over
azure-keyvault-certificates. Properties, policies, issuers and the create (renew) operation;
pitcrew never reads a certificate's private key or body."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pitcrew.azure.keyvault import VaultObjectStore
from pitcrew.housekeeping.ports import CertificatePolicyView, RenewalStatus

if TYPE_CHECKING:
    from pitcrew.runtime import Runtime

# The built-in role that grants list, get, create and the pending operation on certificates.
CERTIFICATES_ROLE = "Key Vault Certificates Officer"


def certificate_client_for(runtime: Runtime) -> Callable[[str], Any]:
    """A cached CertificateClient per vault, pointed like the SecretClient."""
    return lambda vault: runtime.vault_client(
        vault, "azure.keyvault.certificates", "CertificateClient")


def _operation(op: Any) -> RenewalStatus:
    error = getattr(op, "error", None)
    text = None
    if error is not None:
        text = f"{getattr(error, 'code', '') or ''}: {getattr(error, 'message', '') or ''}"[:300]
    return RenewalStatus(status=str(op.status or "inProgress"), error=text)


class KeyVaultCertificateStore(VaultObjectStore):
    """CertificateStore over Key Vault. `client_for(vault)` returns a cached CertificateClient."""

    kind, role = "certificate", CERTIFICATES_ROLE
    list_method, get_method = "list_properties_of_certificates", "get_certificate"

    def policy(self, vault: str, name: str) -> CertificatePolicyView:
        with self._access(vault, "getPolicy", name):
            policy = self._client_for(vault).get_certificate_policy(name)
        percent = days = None
        email_only = False
        for action in policy.lifetime_actions or ():
            kind = str(getattr(action.action, "value", action.action)).lower()
            if kind == "autorenew":
                percent, days = action.lifetime_percentage, action.days_before_expiry
            elif kind == "emailcontacts":
                email_only = True
        return CertificatePolicyView(
            issuer=str(policy.issuer_name or "Unknown"), auto_renew_percent=percent,
            auto_renew_days_before_expiry=days, email_only=email_only and percent is None
            and days is None, validity_months=policy.validity_in_months)

    def issuer_provider(self, vault: str, issuer: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use

        with self._access(vault, "getIssuer", issuer, kind="issuer"):
            try:
                return str(self._client_for(vault).get_issuer(issuer).provider or "") or None
            except ResourceNotFoundError:
                return None

    def pending(self, vault: str, name: str) -> RenewalStatus | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use

        with self._access(vault, "getPending", name):
            try:
                return _operation(self._client_for(vault).get_certificate_operation(name))
            except ResourceNotFoundError:
                return None

    def begin_renewal(self, vault: str, name: str) -> RenewalStatus:
        """A new version with the certificate's own policy. The poller is not waited on: the
        caller follows the pending operation itself (`pending`), at the policy's pace."""
        with self._access(vault, "create", name):
            client = self._client_for(vault)
            policy = client.get_certificate_policy(name)
            tags = client.get_certificate(name).properties.tags  # kept on the new version
            client.begin_create_certificate(name, policy, tags=tags)
            return _operation(client.get_certificate_operation(name))
