"""The `deadletter:` section of pitcrew.yaml (see docs/deadletter.md)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pitcrew.schema import HttpsLink, StrictModel

_NAME = r"^[a-z][a-z0-9-]{0,62}$"
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUEUE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_ENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,259}$")
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
# A Service Bus namespace name (letters, digits, hyphens; starts with a letter), alone or
# followed by the cloud's DNS suffix. The suffix itself is checked against the app's
# PITCREW_SERVICEBUS_SUFFIX where a client is built (pitcrew.runtime).
_NAMESPACE = re.compile(
    r"^[A-Za-z](?:[A-Za-z0-9-]{0,48}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63}){0,6}$")
MessageIdPolicy = Literal["keep", "new"]
DEFAULT_SERVICEBUS_SUFFIX = "servicebus.windows.net"


def _check_namespace(value: str) -> None:
    if not _NAMESPACE.match(value):
        raise ValueError(f"{value[:100]!r} is not a Service Bus namespace (a name of "
                         "letters, digits and hyphens, alone or with the cloud's suffix, e.g. "
                         "sb-prod.servicebus.windows.net)")


def is_source_queue_name(value: str) -> bool:
    """A storage queue name that leaves room for the '-poison' the Functions host appends."""
    return bool(_QUEUE.match(value)) and len(value) <= 56


def check_target_spec(text: str) -> str:
    """A replay target as the policy writes it: 'queue:<name>[@<SETTING>]',
    'servicebus:<namespace>/<queue>[@<SETTING>]' or
    'servicebus:<namespace>/topics/<topic>[@<SETTING>]'. Only the policy names connections."""
    raw, at, connection = text.strip().partition("@")
    kind, _, rest = raw.partition(":")
    if at:
        _check_setting(connection)
    if kind == "queue":
        if not _QUEUE.match(rest):
            raise ValueError(f"{text[:100]!r}: {rest[:64]!r} is not a storage queue name")
        return text.strip()
    if kind == "servicebus":
        namespace, _, entity = rest.partition("/")
        _check_namespace(namespace)
        topic = entity.removeprefix("topics/")
        if not entity or not _ENTITY.match(topic) or (entity.startswith("topics/")
                                                      and "/" in topic):
            raise ValueError(f"{text[:100]!r}: give 'servicebus:<namespace>/<queue>' or "
                             "'servicebus:<namespace>/topics/<topic>'")
        return text.strip()
    raise ValueError(f"{text[:100]!r} must be 'queue:<name>', 'servicebus:<namespace>/<queue>' "
                     "or 'servicebus:<namespace>/topics/<topic>' (optionally '@<APP_SETTING>')")


def _check_setting(name: str | None) -> None:
    if name is not None and not _SETTING.match(name):
        raise ValueError(f"{name!r} is not a valid app setting name")


class _Source(StrictModel):
    name: str = Field(pattern=_NAME, description="How operators and groups name this source.")
    replay_to: str | None = Field(
        default=None,
        description="Default replay target when not the original entity: 'queue:<name>', "
        "'servicebus:<namespace>/<queue>' or 'servicebus:<namespace>/topics/<topic>', "
        "optionally '@<APP_SETTING>' naming the connection.",
    )

    @field_validator("replay_to")
    @classmethod
    def _replay_to(cls, value: str | None) -> str | None:
        return None if value is None else check_target_spec(value)


class StorageQueueSource(_Source):
    """An Azure Storage queue's `<queue>-poison` queue (the Functions queue trigger fills it)."""

    type: Literal["storage-queue"]
    queue: str = Field(description="The original queue; pitcrew reads `<queue>-poison`.")
    connection: str = Field(
        default="AzureWebJobsStorage",
        description="App setting prefix, as the Functions host reads it: a connection string "
        "in <connection>, or identity-based <connection>__queueServiceUri / __accountName.",
    )

    @field_validator("queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not is_source_queue_name(value):
            raise ValueError(
                f"{value!r} is not a storage queue name (3-56 lower-case letters, digits, "
                "single hyphens, leaving room for '-poison')"
            )
        return value

    @model_validator(mode="after")
    def _setting(self) -> StorageQueueSource:
        _check_setting(self.connection)
        return self

    @property
    def entity(self) -> str:
        return f"queue:{self.queue}"


class ServiceBusSource(_Source):
    """A Service Bus queue's or topic subscription's dead-letter queue (peek-lock)."""

    type: Literal["servicebus"]
    namespace: str = Field(
        description="Fully qualified namespace, e.g. sb-prod.servicebus.windows.net")
    queue: str | None = None
    topic: str | None = None
    subscription: str | None = None
    connection: str | None = Field(
        default=None,
        description="App setting holding a connection string (local runs); managed identity "
        "when omitted.",
    )

    @model_validator(mode="after")
    def _entity(self) -> ServiceBusSource:
        if (self.queue is None) == (self.topic is None):
            raise ValueError("give exactly one of 'queue' or 'topic' (with 'subscription')")
        if self.topic is not None and not self.subscription:
            raise ValueError("'subscription' is required with 'topic'")
        if self.queue is not None and self.subscription:
            raise ValueError("'subscription' belongs with 'topic', not 'queue'")
        for value in (self.queue, self.topic, self.subscription):
            if value is not None and not _ENTITY.match(value):
                raise ValueError(f"{value!r} is not a Service Bus entity name")
        _check_namespace(self.namespace)
        _check_setting(self.connection)
        return self

    @property
    def short_namespace(self) -> str:
        return self.namespace.split(".", 1)[0]

    @property
    def entity(self) -> str:
        if self.queue is not None:
            return f"servicebus:{self.short_namespace}/{self.queue}"
        return f"servicebus:{self.short_namespace}/{self.topic}/subscriptions/{self.subscription}"


class EventGridBlobSource(_Source):
    """Event Grid dead-letter blobs: `<container>/<SUBSCRIPTION>/YYYY/M/D/H/<guid>.json`."""

    type: Literal["eventgrid-blob"]
    container: str
    subscription: str | None = Field(
        default=None, description="Only this event subscription's blobs (upper-case, as written)."
    )
    connection: str = Field(default="AzureWebJobsStorage")

    @model_validator(mode="after")
    def _container(self) -> EventGridBlobSource:
        if not _CONTAINER.match(self.container):
            raise ValueError(f"{self.container!r} is not a blob container name")
        _check_setting(self.connection)
        return self

    @property
    def entity(self) -> str:
        sub = f"/{self.subscription}" if self.subscription else ""
        return f"eventgrid:{self.container}{sub}"


Source = Annotated[
    StorageQueueSource | ServiceBusSource | EventGridBlobSource, Field(discriminator="type")
]


class EditPolicy(StrictModel):
    allowed: bool = Field(
        default=False,
        description="Operators may edit a failed message's body and application properties "
        "before replaying it (the original is kept and linked to the edit).",
    )


class ReplayPolicy(StrictModel):
    default_rate: float = Field(default=50.0, gt=0, le=5000, description="Messages per second.")
    max_rate: float = Field(default=500.0, gt=0, le=5000)
    batch_size: int = Field(default=32, ge=1, le=100)
    message_id: MessageIdPolicy = Field(
        default="keep",
        description="'keep': resend with the original message id, so broker duplicate detection "
        "protects against a double send; 'new': a new id, recorded and linked to the original.",
    )
    allow_redirect: bool = Field(
        default=False,
        description="Let operators replay to a target other than the message's own: only to one "
        "listed in `targets` or named by a source's `replay_to`, never a free-form one.")
    targets: list[str] = Field(
        default_factory=list,
        description="The redirect targets operators may pick (with allow_redirect), as "
        "'queue:<name>[@SETTING]' or 'servicebus:<namespace>/<queue>|topics/<topic>[@SETTING]'.")

    @field_validator("targets")
    @classmethod
    def _targets(cls, values: list[str]) -> list[str]:
        return [check_target_spec(v) for v in values]

    @model_validator(mode="after")
    def _rates(self) -> ReplayPolicy:
        if self.default_rate > self.max_rate:
            raise ValueError("default_rate must not exceed max_rate")
        return self


class DeadletterPolicy(StrictModel):
    sources: list[Source] = Field(default_factory=list)
    thresholds: list[int] = Field(
        default_factory=lambda: [10, 100, 1000],
        description="A group crossing one of these counts sends one notification per threshold.",
    )
    retention_days: float = Field(
        default=14, gt=0, le=3650,
        description="Archived and replayed messages are purged this long after they were.",
    )
    edit: EditPolicy = Field(default_factory=EditPolicy)
    replay: ReplayPolicy = Field(default_factory=ReplayPolicy)
    scan_max_messages: int = Field(
        default=1000, ge=1, le=100_000,
        description="At most this many messages per source per scan (the next scan continues).",
    )
    console_url: HttpsLink | None = Field(
        default=None, description="Base URL for links in notifications (the app's URL)."
    )

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values) or values != sorted(set(values)):
            raise ValueError("must be positive counts in ascending order, without repeats")
        return values

    @model_validator(mode="after")
    def _unique(self) -> DeadletterPolicy:
        names: set[str] = set()
        for i, source in enumerate(self.sources):
            if source.name in names:
                raise ValueError(f"sources[{i}].name: {source.name!r} is used by an earlier source")
            names.add(source.name)
        return self

    def source(self, name: str) -> StorageQueueSource | ServiceBusSource | EventGridBlobSource:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)
