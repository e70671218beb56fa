"""What every receiver shares: the failure it raises, the idempotency key, the per-receiver rate
cap (a token bucket per receiver per process, held shut while the service's Retry-After runs),
app settings read by name, and one HTTP POST that never lets a URL, key or header value reach an
error message.

The contract (pitcrew.ports.Channel): a receiver has a `name` and `deliver(notification)`, which
returns when the service took it and raises DeliveryFailed otherwise."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, Field

from pitcrew.ports import Channel
from pitcrew.schema import StrictModel

Receiver = Channel
"""A receiver: `name` and `deliver(notification)`; the same Protocol as a channel."""

SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_RETRY_AFTER_SECONDS = 3600.0


class DeliveryFailed(Exception):
    """A delivery that did not happen. `reason` never holds a URL, key or header value;
    `retry_after_seconds` is how long the service asked us to wait (Retry-After), if it did."""

    def __init__(self, reason: str, *, retryable: bool = True,
                 retry_after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_seconds = retry_after_seconds


def idempotency_key(notification_id: str) -> str:
    """The `Idempotency-Key` of a notification: the SHA-256 of its id, in hex. Ids come from
    event and alert ids, which may hold any character (a bidi override, an emoji, a NUL, CR/LF);
    a header must be visible ASCII, and a digest is that while staying unique per id."""
    return hashlib.sha256(notification_id.encode("utf-8", "surrogatepass")).hexdigest()


class ReceiverConfig(StrictModel):
    """Settings every receiver has."""

    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_per_minute: int | None = Field(
        default=None, ge=1, le=100_000,
        description="Deliveries a minute this receiver may make (per process); the receiver's "
        "own default when omitted.",
    )

    def settings_problems(self, env: Mapping[str, str]) -> dict[str, str]:
        """{field: problem} for each app setting this receiver reads at delivery that `env`
        does not hold as delivery needs it (`pitcrew policy validate --settings`). Receivers
        that name settings override it; the problems are the deliveries' own errors."""
        return {}


def unread_settings(reads: Mapping[str, Callable[[], object] | None]) -> dict[str, str]:
    """{field: why} for each read (a delivery's own read of a setting; None: the field is not
    given) that fails: the DeliveryFailed a delivery would record, which names the setting and
    never its value."""
    problems = {}
    for field, read in reads.items():
        if read is None:
            continue
        try:
            read()
        except DeliveryFailed as exc:
            problems[field] = exc.reason
    return problems


def check_setting_name(name: str | None) -> str | None:
    if name is not None and not SETTING_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid app setting name")
    return name


def exactly_one(config: Any, field: str) -> None:
    """A config gives `field` itself or `<field>_setting` (an app setting holding it): one."""
    if (getattr(config, field) is None) == (getattr(config, f"{field}_setting") is None):
        raise ValueError(f"give exactly one of '{field}' or '{field}_setting'")


SettingName = Annotated[str, AfterValidator(check_setting_name)]
"""A config field holding the name of an app setting, checked as one."""


def check_endpoint(url: str | None) -> str | None:
    """https anywhere; http only on loopback (a local peer in tests and `pitcrew dev`)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - read for its check: a port that is not a number raises
    except ValueError:
        # Python's own message quotes the host or port: part of a URL that may be a secret.
        raise ValueError("is not a valid URL (its host or port cannot be read)") from None
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError("must be an https URL (http only on loopback)")
    if parts.username or parts.password:
        raise ValueError("must not hold credentials (name an app setting instead)")
    return url


def setting(name: str, what: str, env: Mapping[str, str] | None = None) -> str:
    """The value of app setting `name` (a Key Vault reference in Azure) in `env` (the process's
    environment by default); DeliveryFailed naming the setting, never a value, when it is
    unset."""
    value = (os.environ if env is None else env).get(name, "").strip()
    if not value:
        raise DeliveryFailed(f"app setting {name} ({what}) is not set")
    return value


def endpoint_setting(name: str, what: str, env: Mapping[str, str] | None = None) -> str:
    """An endpoint URL from app setting `name`, held to what `check_endpoint` holds the policy's
    own URLs to (https; http only on loopback), checked at each delivery because a setting can
    change without a policy reload. DeliveryFailed names the setting, never the value (such
    URLs embed a token)."""
    value = setting(name, what, env)
    try:
        check_endpoint(value)
    except ValueError as exc:
        raise DeliveryFailed(f"app setting {name} ({what}) {exc}") from None
    return value


class WebhookUrlConfig(ReceiverConfig):
    """A receiver whose whole address is one URL in an app setting (Slack, Teams): the URL
    embeds a token or a signature, so it is a secret and never in the policy."""

    url_label: ClassVar[str] = "webhook URL"  # how errors name the setting's content
    url_setting: SettingName

    def settings_problems(self, env: Mapping[str, str]) -> dict[str, str]:
        return unread_settings({"url_setting": lambda: endpoint_setting(
            self.url_setting, self.url_label, env)})


# ------------------------------------------------------------------ rate cap and Retry-After


class RateGate:
    """A token bucket of `per_minute` tokens refilled evenly over a minute, plus a hold: after a
    429/503 with Retry-After nothing is sent until it lapses. `admit` takes a token or raises
    DeliveryFailed saying how long to wait, so the outbox retries then instead of now."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._tokens = float(per_minute)
        self._stamp = clock()
        self._hold_until = 0.0
        self._lock = threading.Lock()

    def admit(self, name: str) -> None:
        with self._lock:
            now = self._clock()
            if now < self._hold_until:
                wait = self._hold_until - now
                raise DeliveryFailed(
                    f"receiver {name!r} was told to wait (Retry-After) another {wait:.0f}s",
                    retry_after_seconds=wait,
                )
            rate = self.per_minute / 60.0
            self._tokens = min(float(self.per_minute), self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / rate
                raise DeliveryFailed(
                    f"receiver {name!r} is at its cap of {self.per_minute} a minute",
                    retry_after_seconds=wait,
                )
            self._tokens -= 1.0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + seconds)


_gates: dict[tuple[str, str, int], RateGate] = {}
_gates_lock = threading.Lock()


def rate_gate(kind: str, name: str, per_minute: int) -> RateGate:
    """The process's gate of receiver `name`: shared by every instance built for it (the
    services are rebuilt when the policy changes; the bucket and the hold carry over)."""
    with _gates_lock:
        key = (kind, name, per_minute)
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = RateGate(per_minute)
        return gate


def reset_rate_gates() -> None:
    with _gates_lock:
        _gates.clear()


def retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), at most an hour; None when
    absent or unreadable."""
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


# ------------------------------------------------------------------ HTTP


def post_json(
    client: httpx.Client,
    url: str,
    payload: Any,
    *,
    name: str,
    gate: RateGate,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    secrets: tuple[str, ...] = (),
) -> httpx.Response:
    """POST `payload` as JSON after the gate admits it. 2xx returns the response; anything else
    raises DeliveryFailed: retryable for 408, 429 and 5xx, with Retry-After honoured (the gate
    holds the receiver shut for that long, and the outbox waits at least that long). Errors name
    the failure and the receiver, never the URL, a header value or one of `secrets`."""
    gate.admit(name)
    sent = {"Content-Type": "application/json", "User-Agent": "pitcrew", **(headers or {})}
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        response = client.post(url, content=body, headers=sent, timeout=timeout)
    except httpx.TimeoutException:
        raise DeliveryFailed(f"timed out after {timeout}s") from None
    except httpx.LocalProtocolError as exc:
        # h11 quotes the offending header value (an auth header from a setting) verbatim.
        raise DeliveryFailed(
            f"{type(exc).__name__}: a header or the URL of receiver {name!r} is not valid"
        ) from None
    except UnicodeError as exc:
        raise DeliveryFailed(
            f"{type(exc).__name__}: the URL or a header of receiver {name!r} is not ASCII"
        ) from None
    except Exception as exc:
        # Anything else (a refused connection, an invalid URL, a bug) is a failed attempt too,
        # never a crash: the outbox records it, backs off and escalates.
        raise DeliveryFailed(
            f"{type(exc).__name__}: {scrub(exc, url, sent, secrets)}"
        ) from None
    if response.is_success:
        return response
    status = response.status_code
    wait = retry_after(response.headers) if status in (429, 503) else None
    if wait is not None:
        gate.hold(wait)
    # 4xx other than 408/429 will not heal by itself, but a fixed config should still deliver,
    # so these are retried too, just reported as such.
    raise DeliveryFailed(
        f"HTTP {status}" + (f" (Retry-After {wait:.0f}s)" if wait is not None else ""),
        retryable=status >= 500 or status in (408, 429),
        retry_after_seconds=wait,
    )


def scrub(exc: Exception, url: str, headers: Mapping[str, str],
          secrets: tuple[str, ...] = ()) -> str:
    """The error's message without the URL, a header value or a secret (any may hold a token)."""
    text = str(exc)
    request = getattr(exc, "_request", None)
    if request is not None:
        text = text.replace(str(request.url), "<url>")
    if url:
        text = text.replace(url, "<url>")
    for value in (*headers.values(), *secrets):
        if len(value.strip()) >= 4:
            text = text.replace(value, "<redacted>").replace(repr(value)[1:-1], "<redacted>")
    return text[:200]


def headers_from_setting(name: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    raw = (os.environ if env is None else env).get(name, "")
    try:
        headers = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        raise DeliveryFailed(f"app setting {name} is not a JSON object of headers") from None
    if not isinstance(headers, dict):
        raise DeliveryFailed(f"app setting {name} is not a JSON object of headers")
    return {str(k): str(v) for k, v in headers.items()}


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


ConfigT = TypeVar("ConfigT", bound=ReceiverConfig)


class HttpReceiver(Generic[ConfigT]):
    """A receiver that POSTs JSON through `client` behind its rate gate (the process's gate of
    `kind` and `name` unless one is given). Subclasses set `kind`, `default_per_minute` and
    `deliver`."""

    kind: ClassVar[str]
    default_per_minute: ClassVar[int]

    def __init__(self, name: str, config: ConfigT, client: httpx.Client,
                 gate: RateGate | None = None) -> None:
        self.name = name
        self._config = config
        self._client = client
        self._gate = gate or rate_gate(self.kind, name,
                                       config.max_per_minute or self.default_per_minute)

    def _post(self, url: str, payload: Any, notification_id: str,
              secrets: tuple[str, ...] = ()) -> None:
        """post_json with this receiver's name, gate, timeout and the notification's
        Idempotency-Key."""
        post_json(self._client, url, payload, name=self.name, gate=self._gate,
                  timeout=self._config.timeout_seconds,
                  headers={"Idempotency-Key": idempotency_key(notification_id)}, secrets=secrets)
