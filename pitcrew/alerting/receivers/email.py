"""Email over SMTP with STARTTLS (smtplib): a text and an HTML part per notification.

STARTTLS is required, and the server's certificate is verified against the system's trust
store (a private relay's CA through SSL_CERT_FILE). The password is read from an app setting
the config names (a Key Vault reference in Azure); it never reaches a log or an error. The
Message-ID is derived from the idempotency key, so a resend after a crash is the same message
to mail clients that collapse duplicates. 4xx SMTP answers are retried; 5xx are reported as not
retryable (they are still retried, so a fixed config delivers)."""

from __future__ import annotations

import html
import re
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pitcrew.alerting.receivers.base import (
    DeliveryFailed,
    RateGate,
    ReceiverConfig,
    check_setting_name,
    cut,
    idempotency_key,
    rate_gate,
    setting,
    unread_settings,
)
from pitcrew.alerting.receivers.render import View, view
from pitcrew.notify.model import Notification

DEFAULT_PER_MINUTE = 30
SUBJECT_LIMIT = 200
_ADDRESS = r"^[^@\s<>,;:\"]+@[^@\s<>,;:\"]+$"


class EmailConfig(ReceiverConfig):
    """An SMTP relay (Azure Communication Services Email, Microsoft 365, SendGrid, ...)."""

    type: Literal["email"]
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")
    port: int = Field(default=587, ge=1, le=65535)
    from_address: str = Field(pattern=_ADDRESS, max_length=254)
    to: list[str] = Field(min_length=1, max_length=50)
    username: str | None = Field(default=None, max_length=256)
    password_setting: str | None = Field(
        default=None, description="Name of the app setting holding the SMTP password.")

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.match(_ADDRESS, address) or len(address) > 254:
                raise ValueError(f"{address!r} is not an email address")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> EmailConfig:
        check_setting_name(self.password_setting)
        if (self.username is None) != (self.password_setting is None):
            raise ValueError("give both 'username' and 'password_setting', or neither")
        return self

    def settings_problems(self, env: Mapping[str, str]) -> dict[str, str]:
        name = self.password_setting
        return unread_settings({"password_setting": (lambda: setting(
            name, "SMTP password", env)) if name else None})


def email_message(notification: Notification, config: EmailConfig) -> EmailMessage:
    seen = view(notification)
    state = "RESOLVED" if seen.resolved else seen.level.upper()
    subject = " ".join(f"[{state}] {seen.title}".split())  # no CR/LF can reach a header
    message = EmailMessage()
    message["Subject"] = cut(subject, SUBJECT_LIMIT)
    message["From"] = formataddr(("pitcrew", config.from_address))
    message["To"] = ", ".join(config.to)
    message["Date"] = formatdate(localtime=False)
    key = idempotency_key(notification.id)
    message["Message-ID"] = f"<{key[:40]}@pitcrew>"  # short enough never to be folded
    message["X-Pitcrew-Idempotency-Key"] = key
    message["X-Pitcrew-Group"] = idempotency_key(seen.group_key)
    message.set_content(_text(seen))
    message.add_alternative(_html(seen), subtype="html")
    return message


def _text(seen: View) -> str:
    lines = [seen.title, "", seen.summary, ""]
    lines += [f"{k}: {v}" for k, v in seen.facts]
    if seen.alerts:
        lines += ["", f"Alerts in this group ({len(seen.alerts)}):"]
        lines += [f"  - {a}" for a in seen.alerts[:200]]
    if seen.links or seen.commands:
        lines += ["", "What to do:"]
        lines += [f"  {label}: {url}" for label, url in seen.links]
        lines += [f"  {label}: {command}" for label, command in seen.commands]
    lines += ["", f"group {seen.group_key}"]
    return "\n".join(lines) + "\n"


def _html(seen: View) -> str:
    e = html.escape
    rows = "".join(f"<tr><th align=left>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in seen.facts)
    alerts = "".join(f"<li>{e(a)}</li>" for a in seen.alerts[:200])
    links = "".join(f'<li><a href="{e(url)}">{e(label)}</a></li>' for label, url in seen.links)
    commands = "".join(f"<li>{e(label)}: <code>{e(c)}</code></li>" for label, c in seen.commands)
    return (
        f"<html><body><h2>{e(seen.title)}</h2><p>{e(seen.summary)}</p>"
        f"<table>{rows}</table>"
        + (f"<h3>Alerts in this group ({len(seen.alerts)})</h3><ul>{alerts}</ul>" if alerts else "")
        + (f"<h3>What to do</h3><ul>{links}{commands}</ul>" if links or commands else "")
        + "</body></html>"
    )


class EmailReceiver:
    def __init__(self, name: str, config: EmailConfig, gate: RateGate | None = None) -> None:
        self.name = name
        self._config = config
        self._gate = gate or rate_gate("email", name, config.max_per_minute or DEFAULT_PER_MINUTE)

    def deliver(self, notification: Notification) -> None:
        config = self._config
        password = (setting(config.password_setting, "SMTP password")
                    if config.password_setting else None)
        message = email_message(notification, config)
        self._gate.admit(self.name)
        try:
            with smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds) as smtp:
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise DeliveryFailed(
                        f"SMTP server of receiver {self.name!r} does not offer STARTTLS")
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
                if config.username and password is not None:
                    smtp.login(config.username, password)
                smtp.send_message(message)
        except DeliveryFailed:
            raise
        except smtplib.SMTPResponseException as exc:
            # The server's text may echo what it was sent: only the code is kept.
            raise DeliveryFailed(f"SMTP {exc.smtp_code}", retryable=400 <= exc.smtp_code < 500
                                 or exc.smtp_code == 421) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise DeliveryFailed(f"SMTP recipients refused ({codes})",
                                 retryable=all(400 <= c < 500 for c in codes)) from None
        except ssl.SSLError as exc:
            raise DeliveryFailed(f"TLS: {exc.reason or type(exc).__name__}") from None
        except TimeoutError:
            raise DeliveryFailed(f"timed out after {config.timeout_seconds}s") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"{type(exc).__name__} talking to the SMTP server") from None
