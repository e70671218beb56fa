"""What operators do to failed messages besides replaying: view (bodies audited), edit, archive;
and the retention purge the timer runs."""

from __future__ import annotations

import base64
import logging
from collections import Counter
from datetime import timedelta
from typing import Any

from pitcrew.audit import AuditRecord, app_identity
from pitcrew.deadletter.bodies import view as body_view
from pitcrew.deadletter.grouping import message_id as new_message_id
from pitcrew.deadletter.model import (
    FailedMessage,
    MessageFilter,
    NotFound,
    plain_properties,
    utcnow,
)
from pitcrew.deadletter.notices import resolve_group
from pitcrew.deadletter.ports import DeadletterServices
from pitcrew.errors import Forbidden, InvalidInput

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024


def view_message(dl: DeadletterServices, message_id: str, *, actor: str,
                 with_body: bool) -> dict[str, Any]:
    message = dl.store.get(message_id)
    view = message.summary()
    if with_body:
        body = dl.store.body(message_id)
        # Bodies are customer data: who looked at which one is audited, the content never is.
        dl.audit.append(AuditRecord(
            actor=actor, action="dlq.view-body", target=f"dlq-message:{message_id}",
            outcome="succeeded", correlation_id=message.group,
            details={"entity": message.entity, "bodySize": len(body)}))
        view["body"] = body_view(body, message.source_kind)  # decoded, as the consumer saw it
    return view


def decode_body(raw: Any) -> bytes:
    if not isinstance(raw, dict) or ("text" in raw) == ("base64" in raw):
        raise InvalidInput("body", "must be {\"text\": ...} or {\"base64\": ...}")
    if "text" in raw:
        if not isinstance(raw["text"], str):
            raise InvalidInput("body.text", "must be a string")
        try:
            data = raw["text"].encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput("body.text", "is not valid Unicode text (an unpaired "
                                            "surrogate)") from None
    else:
        try:
            data = base64.b64decode(str(raw["base64"]), validate=True)
        except ValueError:
            raise InvalidInput("body.base64", "is not valid base64") from None
    if len(data) > MAX_BODY:
        raise InvalidInput("body", f"is larger than {MAX_BODY} bytes")
    return data


def edit_message(dl: DeadletterServices, message_id: str, *, actor: str, body: bytes | None,
                 application_properties: dict[str, Any] | None) -> FailedMessage:
    """A new failed message with the edits, linked both ways to the original, which is kept
    (status `superseded`) and no longer replayed.

    The original is taken first (ETag-conditional: `superseded`, naming the edit's id), then
    the edit is written: a concurrent edit or a replay that took the original wins and nothing
    of this edit exists (503, ask again), so one message never becomes two. When writing the
    edit fails the original is handed back as it was; when the process died in between, the
    original names an edit that does not exist, and asking for the edit again writes it."""
    if not dl.policy.edit.allowed:
        raise Forbidden("editing failed messages is not allowed by policy (deadletter.edit)")
    if body is None and application_properties is None:
        raise InvalidInput("body", "give a new body, applicationProperties, or both")
    original = dl.store.get(message_id)
    interrupted = original.status == "superseded" and bool(original.edited_as) \
        and not _exists(dl, str(original.edited_as))
    if original.status != "failed" and not interrupted:
        raise InvalidInput("message", f"{message_id} is {original.status}; only a failed "
                           "message can be edited")
    new_body = body if body is not None else dl.store.body(message_id)
    app = (plain_properties(application_properties) if application_properties is not None
           else dict(original.application_properties))
    now = utcnow()
    if interrupted:
        edited_id, edited_key = str(original.edited_as), f"edit:{original.id}:resumed"
    else:
        edited_key = f"edit:{original.id}:{now.isoformat()}"
        edited_id = new_message_id(original.group, edited_key)
        original = dl.store.update(original.copy(status="superseded", edited_as=edited_id))
    edited = original.copy(
        id=edited_id, source_key=edited_key,
        application_properties=app, ingested_at=now, status="failed", edit_of=original.id,
        edited_as=None, edited_by=actor, replay_job=None, replay_attempt=0, replayed_at=None,
        replayed_to=None, sent_message_id=None, possible_duplicate=False, etag=None)
    try:
        dl.store.put(edited, new_body)
    except Exception:
        try:
            dl.store.update(original.copy(status="failed", edited_as=None))
        except Exception as exc:  # left superseded: asking for the edit again writes it
            log.warning("dlq edit of %s: the original could not be handed back (%s)",
                        original.id, type(exc).__name__)
        raise
    changed = [name for name, given in (("body", body), ("applicationProperties",
                                                          application_properties))
               if given is not None]
    dl.audit.append(AuditRecord(
        actor=actor, action="dlq.edit", target=f"dlq-message:{original.id}",
        outcome="succeeded", correlation_id=original.group,
        details={"editedAs": edited.id, "changed": changed, "bodySize": len(new_body),
                 **({"resumed": True} if interrupted else {})}))
    return edited


def _exists(dl: DeadletterServices, message_id: str) -> bool:
    try:
        dl.store.get(message_id)
    except NotFound:
        return False
    return True


def archive(dl: DeadletterServices, *, actor: str, group: str | None,
            ids: list[str]) -> dict[str, int]:
    """Archive failed messages (kept until retention, never replayed by a group replay)."""
    if bool(group) == bool(ids):
        raise InvalidInput("body", "give exactly one of 'group' or 'messages'")
    if group:
        dl.store.group(group)
        candidates = list(dl.store.in_group(group, status="failed"))
    else:
        candidates = [dl.store.get(i) for i in ids]
    now = utcnow()
    wanted = [m.copy(status="archived", archived_at=now, archived_by=actor)
              for m in candidates if m.status == "failed"]
    done = dl.store.update_many(wanted) if wanted else []
    result = {"archived": len(done), "skipped": len(candidates) - len(done)}
    if group and done:
        resolve_group(dl, group, f"archived by {actor}")
    details: dict[str, Any] = {**result, "messages": [m.id for m in done][:100],
                               "retentionDays": dl.policy.retention_days}
    if not done:  # nothing archived: a no-op, never "succeeded"
        details["reason"] = _nothing_archived(candidates, len(wanted))
    dl.audit.append(AuditRecord(
        actor=actor, action="dlq.archive", target=f"dlq-group:{group}" if group else
        f"dlq-messages:{len(ids)}", outcome="succeeded" if done else "skipped",
        correlation_id=group or ids[0], details=details))
    return result


def _nothing_archived(candidates: list[FailedMessage], wanted: int) -> str:
    """Why an archive request archived nothing."""
    if not candidates:
        return "the group has no failed message"
    if wanted:
        return f"the {wanted} failed message(s) changed meanwhile (a replay or an edit took them)"
    statuses = Counter(m.status for m in candidates)
    listed = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    return f"no message was failed ({listed}); only a failed message is archived"


def purge(dl: DeadletterServices) -> dict[str, int]:
    """Delete archived, replayed and superseded messages past retention (row and body)."""
    cutoff = utcnow() - timedelta(days=dl.policy.retention_days)
    purged: dict[str, int] = {}
    for status in ("archived", "replayed", "superseded"):
        for message in dl.store.with_status(status):
            moment = (message.archived_at if status == "archived" else
                      message.replayed_at if status == "replayed" else message.ingested_at)
            if moment is not None and moment < cutoff:
                dl.store.delete(message)
                purged[status] = purged.get(status, 0) + 1
    if purged:
        dl.audit.append(AuditRecord(
            actor=app_identity(), action="dlq.purge", target="dlq-store", outcome="succeeded",
            correlation_id=cutoff.isoformat(),
            details={"purged": purged, "retentionDays": dl.policy.retention_days}))
    return purged


def group_view(dl: DeadletterServices, group_id: str, flt: MessageFilter | None = None, *,
               limit: int = 100, after: str | None = None) -> dict[str, Any]:
    """One page of a group's messages (filtered), with the counts by status on the first."""
    group = dl.store.group(group_id)
    page = dl.store.messages_page(group_id, flt, limit=limit, after=after)
    extra: dict[str, Any] = group.to_dict()
    if after is None:
        extra["statuses"] = dl.store.status_counts(group_id)
    return page.map(lambda m: m.summary()).body("messages", **extra)
