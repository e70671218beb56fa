"""Request models: the query strings and JSON bodies of pitcrew's routes, parsed by pydantic.

Each field's validator raises InvalidInput(field, problem) itself, so a bad value is a 400 that
names the field in pitcrew's own words (pydantic lets that error through untouched); what
passes comes out typed. Fields are checked in the order they are declared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pitcrew.deadletter import queries as dlq
from pitcrew.deadletter.model import STATUSES as MESSAGE_STATUSES
from pitcrew.deadletter.model import MessageFilter
from pitcrew.deadletter.operations import decode_body
from pitcrew.deadletter.targets import MAX_TARGET_TEXT
from pitcrew.errors import InvalidInput
from pitcrew.events import MAX_JSON_DEPTH, check_object_name, check_vault_name, load_json
from pitcrew.http.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_token, limit_param
from pitcrew.schema import StrictModel

ModelT = TypeVar("ModelT", bound=BaseModel)


def validated(model: type[ModelT], raw: Mapping[str, Any]) -> ModelT:
    """`model` of `raw`; pydantic's own first error as InvalidInput (its path, else "body")."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise InvalidInput(where, error["msg"]) from None


class RequestModel(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore",
                              validate_default=True)
    # What a body that is not a JSON object is told; None: such a body is not accepted at all.
    object_problem: ClassVar[str] = "must be a JSON object"
    # An empty body stands for `{}` (every field takes its default).
    empty_is_object: ClassVar[bool] = False
    max_depth: ClassVar[int] = MAX_JSON_DEPTH

    @classmethod
    def of(cls, raw: Mapping[str, Any], **context: Any) -> Self:
        """The model of a query string or JSON object; InvalidInput names what is wrong."""
        return cls.model_validate({**raw, **context})

    @classmethod
    def raw(cls, body: bytes) -> Any:
        """The JSON of a request body (load_json's limits at the model's depth)."""
        if cls.empty_is_object and (not body or not body.strip()):
            return {}
        return load_json(body, max_depth=cls.max_depth)

    @classmethod
    def from_body(cls, body: bytes, **context: Any) -> Self:
        """The model of a JSON request body."""
        raw = cls.raw(body)
        if not isinstance(raw, dict):
            raise InvalidInput("body", cls.object_problem)
        return cls.of(raw, **context)


def _limit(raw: Any) -> int:
    return limit_param({"limit": raw if isinstance(raw, str) else ""},
                       default=DEFAULT_LIMIT, maximum=MAX_LIMIT)


def _token(raw: Any) -> dict[str, Any] | None:
    return decode_token(raw if isinstance(raw, str) else None)


Limit = Annotated[int, BeforeValidator(_limit)]
Continuation = Annotated[dict[str, Any] | None, BeforeValidator(_token)]


class PageQuery(RequestModel):
    """`?limit=&continuation=` of every list route."""

    limit: Limit = DEFAULT_LIMIT
    continuation: Continuation = None


def _iso_time(name: str) -> Callable[[Any], datetime | None]:
    """An ISO 8601 time (UTC when it names no offset), in UTC; None when absent or empty."""

    def parse(raw: Any) -> datetime | None:
        if not raw or not isinstance(raw, str):
            return None
        try:
            value = datetime.fromisoformat(raw)
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        except ValueError:
            raise InvalidInput(name, f"is not an ISO 8601 time: {raw[:40]!r}") from None
        except OverflowError:
            raise InvalidInput(name, f"is out of range: {raw[:40]!r}") from None

    return parse


def _text_or_none(raw: Any) -> str | None:
    return raw if isinstance(raw, str) and raw else None


OptionalText = Annotated[str | None, BeforeValidator(_text_or_none)]


class AuditParams(PageQuery):
    """`GET /api/audit`: the page, the range (checked by audit.AuditQuery) and the filters."""

    until: Annotated[datetime | None, BeforeValidator(_iso_time("until"))] = None
    since: Annotated[datetime | None, BeforeValidator(_iso_time("since"))] = None
    target: OptionalText = None
    actor: OptionalText = None
    action: OptionalText = None


def choice(name: str, allowed: Sequence[str], *, fold_case: bool = False
           ) -> Callable[[Any], str | None]:
    """A filter that takes one of `allowed` (surrounding blanks ignored; with `fold_case`,
    any case): None when absent or empty, else a 400 naming the field and the choices."""

    def parse(raw: Any) -> str | None:
        text = (raw if isinstance(raw, str) else "").strip()
        if fold_case:
            text = text.lower()
        if not text:
            return None
        if text not in allowed:
            raise InvalidInput(name, f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _bounded_text(name: str, most: int) -> Callable[[Any], str | None]:
    """A filter's text, at most `most` characters; None when absent or empty."""

    def parse(raw: Any) -> str | None:
        if not raw:
            return None
        if not isinstance(raw, str) or len(raw) > most:
            raise InvalidInput(name, f"must be text of at most {most} characters")
        return raw

    return parse


class RejectedParams(PageQuery):
    """`GET /api/events/rejected`: the page and its filters (a time range, the event's source
    and type, the function that refused it), each matched exactly."""

    since: Annotated[datetime | None, BeforeValidator(_iso_time("since"))] = None
    until: Annotated[datetime | None, BeforeValidator(_iso_time("until"))] = None
    source: Annotated[str | None, BeforeValidator(_bounded_text("source", 4096))] = None
    type: Annotated[str | None, BeforeValidator(_bounded_text("type", 4096))] = None
    function: Annotated[str | None, BeforeValidator(_bounded_text("function", 200))] = None

    @model_validator(mode="after")
    def _ordered(self) -> RejectedParams:
        if self.since and self.until and self.since > self.until:
            raise InvalidInput("since", "must not be after until")
        return self


def _yes_no(name: str) -> Callable[[Any], bool]:
    """A query string's switch: true/1/yes or false/0/no (absent or empty: false)."""

    def parse(raw: Any) -> bool:
        if isinstance(raw, bool):  # the default
            return raw
        text = raw.strip().lower() if isinstance(raw, str) else raw
        if text in (None, "", "0", "false", "no"):
            return False
        if text in ("1", "true", "yes"):
            return True
        raise InvalidInput(name, "must be true or false")

    return parse


class BackupsParams(PageQuery):
    """`GET /api/backups`: the page of checks and its filters: only failing resources, one
    check by name, one resource by its id (ARM ids compare without case)."""

    failing: Annotated[bool, BeforeValidator(_yes_no("failing"))] = False
    check: Annotated[str | None, BeforeValidator(_bounded_text("check", 100))] = None
    resource: Annotated[str | None, BeforeValidator(_bounded_text("resource", 1024))] = None


DRILL_STATUSES = ("never-run", "running", "waiting-manual", "succeeded", "failed")


class DrillsParams(PageQuery):
    """`GET /api/drills`: the page of drills and its filters: the last run's status, only
    drills with a problem (failed, overdue, a manual step late), one storage account."""

    status: Annotated[str | None, BeforeValidator(choice("status", DRILL_STATUSES))] = None
    failing: Annotated[bool, BeforeValidator(_yes_no("failing"))] = False
    account: Annotated[str | None, BeforeValidator(_bounded_text("account", 200))] = None


# ------------------------------------------------------------------ rotations

MAX_REASON_CHARS = 500
ROTATION_STATUSES = ("running", "waiting", "succeeded", "failed", "skipped")


def _vault_name(name: str, check: Callable[[str, str], None]) -> Callable[[Any], str]:
    """A vault or object name by Key Vault's own rules: the vault's becomes a host name to
    look up, so anything Key Vault could not have named is a 400 before any connection."""
    def parse(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(name, "is required (a string)")
        value = value.strip()
        check(value, name)
        return value

    return parse


def json_flag(name: str) -> Callable[[Any], bool]:
    """A JSON body's switch: true or false, nothing else (a string "false" is truthy)."""

    def parse(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidInput(name, "must be true or false")
        return value

    return parse


def _reason(value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise InvalidInput("reason", "must be a string")
    reason = " ".join((value or "").split())
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput("reason", f"must be at most {MAX_REASON_CHARS} characters")
    return reason


class RotationRequest(RequestModel):
    """`POST /api/rotations`."""

    object_problem: ClassVar[str] = 'must be a JSON object {"vault": ..., "secret": ...}'

    vault: Annotated[str, BeforeValidator(_vault_name("vault", check_vault_name))] = ""
    secret: Annotated[str, BeforeValidator(_vault_name("secret", check_object_name))] = ""
    dry_run: Annotated[bool, BeforeValidator(json_flag("dry_run"))] = Field(
        default=False, validation_alias=AliasChoices("dry_run", "dryRun"))
    force: Annotated[bool, BeforeValidator(json_flag("force"))] = False
    both: Annotated[bool, BeforeValidator(json_flag("both"))] = False
    reason: Annotated[str, BeforeValidator(_reason)] = ""

    @model_validator(mode="after")
    def _reason_for_emergencies(self) -> Self:
        if (self.force or self.both) and not self.reason:
            raise InvalidInput("reason", "is required with force or both: say why (it is audited)")
        return self


def _rotation_status(value: Any) -> str | None:
    status = (value if isinstance(value, str) else "").strip() or None
    if status and status not in ROTATION_STATUSES:
        raise InvalidInput("status", "must be running, waiting, succeeded, failed or skipped")
    return status


def _secret_filter(value: Any) -> str | None:
    secret = (value if isinstance(value, str) else "").strip().lower() or None
    if secret and (len(secret) > 260 or not all(c.isalnum() or c in "-/" for c in secret)
                   or secret.count("/") > 1):
        raise InvalidInput("secret", "must be VAULT/SECRET or SECRET (Key Vault names)")
    return secret


class RotationsQuery(PageQuery):
    """`GET /api/rotations?status=&secret=`."""

    status: Annotated[str | None, BeforeValidator(_rotation_status)] = None
    secret: Annotated[str | None, BeforeValidator(_secret_filter)] = None


# ------------------------------------------------------------------ dead letters

DLQ_JSON_DEPTH = 32
MAX_IDS = 500


class DeadletterBody(RequestModel):
    """A body of the /api/dlq routes: empty means `{}`, nested at most 32 deep."""

    empty_is_object: ClassVar[bool] = True
    max_depth: ClassVar[int] = DLQ_JSON_DEPTH


class _DeadletterList(PageQuery):
    """A dead-letter list's page: its token holds the last id listed (`position`'s shape)."""

    position: ClassVar[re.Pattern[str]]
    after: str | None = None  # from the token, never from the query string

    @model_validator(mode="after")
    def _position(self) -> Self:
        return self.model_copy(update={"after": dlq.position_after(self.continuation,
                                                                   self.position)})


def _dlq_time(name: str) -> Callable[[Any], datetime | None]:
    return lambda raw: dlq.time_value(raw, name)


DeadletterSince = Annotated[datetime | None, BeforeValidator(_dlq_time("since"))]
DeadletterUntil = Annotated[datetime | None, BeforeValidator(_dlq_time("until"))]


class GroupsQuery(_DeadletterList):
    """`GET /api/dlq/groups?since=&until=&source=&entity=`: last seen within the range, of one
    source the policy names (`sources`, from the policy, never the query), of one entity."""

    position: ClassVar[re.Pattern[str]] = dlq.GROUP_ID
    since: DeadletterSince = None
    until: DeadletterUntil = None
    sources: tuple[str, ...] = ()
    source: OptionalText = None
    entity: Annotated[str | None, BeforeValidator(dlq.entity_value)] = None

    @model_validator(mode="after")
    def _checked(self) -> Self:
        dlq.bounded_range(self.since, self.until)
        dlq.known_source(self.source, self.sources)
        return self


class MessagesQuery(_DeadletterList):
    """`GET /api/dlq/groups/{group}?status=&since=&until=&text=&prop.K=V`."""

    position: ClassVar[re.Pattern[str]] = dlq.MESSAGE_ID
    status: Annotated[str | None, BeforeValidator(choice("status", MESSAGE_STATUSES))] = None
    since: DeadletterSince = None
    until: DeadletterUntil = None
    text: Annotated[str | None, BeforeValidator(dlq.text_value)] = None
    properties: tuple[tuple[str, str], ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _property_filters(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping):
            raw = {**raw, "properties": dlq.property_pairs(raw)}
        return raw

    @model_validator(mode="after")
    def _checked(self) -> Self:
        dlq.bounded_range(self.since, self.until)
        return self

    def filter(self) -> MessageFilter:
        return MessageFilter(status=self.status, since=self.since, until=self.until,
                             text=self.text, properties=self.properties)


class JobsQuery(_DeadletterList):
    """`GET /api/dlq/replays?since=&until=&status=`: requested within the range, which is
    always bounded (default: the last 30 days)."""

    position: ClassVar[re.Pattern[str]] = dlq.JOB_ID
    since: DeadletterSince = None
    until: DeadletterUntil = None
    status: Annotated[str | None, BeforeValidator(choice("status", dlq.JOB_STATUSES))] = None

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        since, until = dlq.bounded_range(self.since, self.until,
                                         default_span=dlq.JOBS_DEFAULT_SPAN)
        return self.model_copy(update={"since": since, "until": until})


class MessageQuery(RequestModel):
    """`GET /api/dlq/messages/{id}?body=true`: the body too (decoded, audited)."""

    body: Annotated[bool, BeforeValidator(_yes_no("body"))] = False


def _message_ids(value: Any) -> list[str]:
    ids = value or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("messages", "must be an array of message ids")
    return ids


def _number(name: str, kind: tuple[type, ...]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, kind):
            raise InvalidInput(name, "must be a number")
        # JSON allows any number of digits: 1 followed by 400 zeros is no float (and 1e400 is
        # infinity). Refused here, naming the field, rather than overflowing later (a 500).
        number: Any = value  # an int or a float, checked just above
        try:
            finite = math.isfinite(float(number))
        except OverflowError:
            finite = False
        if not finite:
            raise InvalidInput(name, "is out of range")
        return value

    return parse


def _message_id_policy(value: Any) -> str | None:
    if value not in (None, "keep", "new"):
        raise InvalidInput("messageId", "must be 'keep' or 'new'")
    return value


def _replay_target(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()
                              or len(value) > MAX_TARGET_TEXT):
        raise InvalidInput("target", f"must be a non-empty string of at most "
                           f"{MAX_TARGET_TEXT} characters")
    return value


def _group_name(value: Any) -> str | None:
    # Checked here, as the archive's is: the id becomes a Table key, and a key with '/' or a
    # lone surrogate is a storage error (a 500) rather than the caller's 400.
    return None if value is None else dlq.group_id(value)


class ReplayRequest(DeadletterBody):
    """`POST /api/dlq/replays`: a group or message ids, where to, how fast; `actor` is who
    asked (from the principal, never the body)."""

    actor: str
    group: Annotated[str | None, BeforeValidator(_group_name)] = None
    ids: Annotated[tuple[str, ...], BeforeValidator(_message_ids)] = Field(
        default=(), validation_alias=AliasChoices("messages", "ids"))
    rate: Annotated[float | None, BeforeValidator(_number("rate", (int, float)))] = None
    batch_size: Annotated[int | None, BeforeValidator(_number("batchSize", (int,)))] = Field(
        default=None, validation_alias=AliasChoices("batchSize", "batch_size"))
    message_id: Annotated[str | None, BeforeValidator(_message_id_policy)] = Field(
        default=None, validation_alias=AliasChoices("messageId", "message_id"))
    target: Annotated[str | None, BeforeValidator(_replay_target)] = None
    dry_run: Annotated[bool, BeforeValidator(json_flag("dryRun"))] = Field(
        default=False, validation_alias=AliasChoices("dryRun", "dry_run"))

    @model_validator(mode="before")
    @classmethod
    def _one_selection(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            ids = raw.get("messages", raw.get("ids")) or []
            if bool(raw.get("group")) == bool(ids):
                raise InvalidInput("body", "give exactly one of 'group' or 'messages'")
        return raw

    @field_validator("ids", mode="after")
    @classmethod
    def _few_and_unique(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        if len(ids) > MAX_IDS:
            raise InvalidInput("messages", f"at most {MAX_IDS} ids; replay a group for more")
        return tuple(dict.fromkeys(ids))


def _properties(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidInput("applicationProperties", "must be an object")
    return value


class EditRequest(DeadletterBody):
    """`POST /api/dlq/messages/{id}/edit`: a new body (`{"text"}` or `{"base64"}`, decoded by
    the operation) and/or new application properties."""

    body: bytes | None = None
    application_properties: Annotated[dict[str, Any] | None, BeforeValidator(_properties)] = \
        Field(default=None, validation_alias=AliasChoices("applicationProperties"))

    @model_validator(mode="before")
    @classmethod
    def _decoded_body(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "body" in raw:
            raw = {**raw, "body": decode_body(raw["body"])}
        return raw


def _archive_ids(value: Any) -> tuple[str, ...]:
    ids = _message_ids(value)
    if len(ids) > MAX_IDS:
        raise InvalidInput("messages", f"at most {MAX_IDS} ids; archive a group for more")
    for ident in ids:
        dlq.message_id(ident, "messages")
    return tuple(ids)


class ArchiveRequest(DeadletterBody):
    """`POST /api/dlq/archive`: message ids and/or a group."""

    ids: Annotated[tuple[str, ...], BeforeValidator(_archive_ids)] = Field(
        default=(), validation_alias=AliasChoices("messages", "ids"))
    group: Annotated[str | None, BeforeValidator(_group_name)] = None


def _source_names(value: Any) -> list[str] | None:
    if value is not None and (not isinstance(value, list) or
                              not all(isinstance(n, str) for n in value)):
        raise InvalidInput("sources", "must be an array of source names")
    return value


class ScanRequest(DeadletterBody):
    """`POST /api/dlq/scan`: which sources (all when omitted)."""

    sources: Annotated[list[str] | None, BeforeValidator(_source_names)] = None


class PurgeRequest(StrictModel):
    """`{"group": G}` or `{"before": "<ISO 8601>"}`, with `"dryRun": true` to only list."""

    group: str | None = Field(default=None, pattern=r"^[0-9a-f]{12}$",
                              description="A dead-letter group id (12 hex).")
    before: datetime | None = Field(default=None,
                                    description="Messages ingested before this time.")
    dry_run: Annotated[bool, BeforeValidator(json_flag("dryRun"))] = Field(
        default=False, alias="dryRun", description="List what would go; delete nothing.")

    @field_validator("before")
    @classmethod
    def _bounded(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        if not 2000 <= value.year <= 2999 or not 2000 <= value.astimezone(UTC).year <= 2999:
            raise ValueError("must be a time between the years 2000 and 2999 (UTC)")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _one_selection(self) -> PurgeRequest:
        if (self.group is None) == (self.before is None):
            raise ValueError("give exactly one of 'group' or 'before'")
        return self

    @classmethod
    def from_body(cls, body: bytes) -> PurgeRequest:
        """`POST /api/dlq/purge`; pydantic's own message names what is wrong."""
        raw = DeadletterBody.raw(body)
        if not isinstance(raw, dict):
            raise InvalidInput("body", "must be a JSON object")
        return validated(cls, raw)
