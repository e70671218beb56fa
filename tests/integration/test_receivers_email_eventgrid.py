"""The email receiver against a real local SMTP server (aiosmtpd) with STARTTLS and a trustme
CA; the Event Grid receiver through the real EventGridPublisherClient to the local Azure
endpoint's topic."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pitcrew.alerting.receivers.base import DeliveryFailed, RateGate, idempotency_key
from pitcrew.alerting.receivers.email import EmailConfig, EmailReceiver
from pitcrew.alerting.receivers.eventgrid import EVENT_TYPE, EventGridConfig, EventGridReceiver
from pitcrew.azure.eventgrid import topic_publisher
from pitcrew.notify.model import Action, Notification

PASSWORD = "smtp-Pa55word-never-logged"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp(ca: trustme.CA, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Controller, Inbox]]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # the client trusts the test CA only
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(),
                            tls_context=server_context, require_starttls=True,
                            authenticator=_authenticate, auth_require_tls=True)
    controller.start()
    yield controller, inbox
    controller.stop()


def note(**changes: Any) -> Notification:
    return Notification(
        id="alert:1|Fired", dedup_key="alert-1", kind="alert", severity="warning",
        status="firing", title="[Fired] quota-usage\r\nBcc: evil@example.com (Sev2)",
        summary="Quota usage above 80%", correlation_id="c1",
        facts={"Value": "87.5", "Query": "<script>x</script>"},
        actions=(Action("Open the query results", "https://portal.azure.com/#q"),), **changes)


def config(controller: Controller, **extra: Any) -> EmailConfig:
    return EmailConfig(type="email", host="127.0.0.1", port=controller.port,
                       from_address="pitcrew@example.com", to=["oncall@example.com"],
                       username="pitcrew", password_setting="SMTP_PASSWORD", **extra)


def test_email_over_starttls_with_login(smtp: tuple[Controller, Inbox],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    controller, inbox = smtp
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    EmailReceiver("mail", config(controller), gate=RateGate(100)).deliver(note())
    assert inbox.recipients == [["oncall@example.com"]]
    message = message_from_bytes(inbox.messages[0], policy=email_policy)
    assert "\n" not in message["Subject"] and "Bcc" not in message
    assert message["Subject"].startswith("[WARNING] [Fired] quota-usage")
    assert message["Message-ID"] == f"<{idempotency_key('alert:1|Fired')[:40]}@pitcrew>"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk()
             if not p.is_multipart()}
    assert "Value: 87.5" in parts["text/plain"]
    assert "&lt;script&gt;" in parts["text/html"] and "<script>" not in parts["text/html"]
    assert 'href="https://portal.azure.com/#q"' in parts["text/html"]


def test_email_wrong_password_or_untrusted_tls_fail_without_secrets(
    smtp: tuple[Controller, Inbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, inbox = smtp
    receiver = EmailReceiver("mail", config(controller, timeout_seconds=2), gate=RateGate(100))
    with pytest.raises(DeliveryFailed, match="app setting SMTP_PASSWORD"):
        receiver.deliver(note())
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD + "-wrong")
    with pytest.raises(DeliveryFailed) as refused:
        receiver.deliver(note())
    assert PASSWORD not in str(refused.value) and "SMTP" in refused.value.reason
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent")  # the test CA is no longer trusted
    with pytest.raises(DeliveryFailed, match="TLS"):
        receiver.deliver(note())
    assert inbox.messages == []


@pytest.fixture(scope="module")
def local_azure() -> Iterator[Any]:
    from pitcrew_dev.azure_endpoint import start_local_azure

    with start_local_azure() as endpoint:
        yield endpoint


def test_eventgrid_publishes_a_cloud_event(local_azure: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew_dev.azure_endpoint import LocalCredential

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(local_azure.ca_bundle_path))
    monkeypatch.setenv("TOPIC_KEY", "local-topic-key")
    endpoint = local_azure.topic_endpoint("alerts")
    with_key = EventGridReceiver(
        "grid", EventGridConfig(type="eventgrid", endpoint=endpoint, key_setting="TOPIC_KEY"),
        lambda url, key: topic_publisher(url, key=key, credential=LocalCredential),
        gate=RateGate(100))
    with_key.deliver(note())
    with_identity = EventGridReceiver(
        "grid2", EventGridConfig(type="eventgrid", endpoint=endpoint),
        lambda url, key: topic_publisher(url, key=key, credential=LocalCredential),
        gate=RateGate(100))
    with_identity.deliver(note(group_key="{}:{alertname=\"q\"}"))
    first, second = local_azure.published_events("alerts")
    assert first["type"] == EVENT_TYPE and first["specversion"] == "1.0"
    assert first["id"] == idempotency_key("alert:1|Fired")
    assert first["source"] == "/pitcrew/alerting" and first["subject"] == "alert-1"
    assert first["data"]["title"].startswith("[Fired] quota-usage")
    assert second["subject"] == "{}:{alertname=\"q\"}"


def test_eventgrid_refused_names_no_key(local_azure: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:
        def publish(self, event: Any) -> None:
            raise RuntimeError("401 for key local-secret-key at https://x/api/events")

    monkeypatch.setenv("TOPIC_KEY", "local-secret-key")
    receiver = EventGridReceiver(
        "grid", EventGridConfig(type="eventgrid", endpoint="https://x/api/events",
                                key_setting="TOPIC_KEY"),
        lambda url, key: Refusing(), gate=RateGate(100))
    with pytest.raises(DeliveryFailed) as failed:
        receiver.deliver(note())
    assert "local-secret-key" not in str(failed.value) and "https://x" not in str(failed.value)
