"""Replay jobs: persisted, rate-limited, resumable, at most one outstanding replay per message.

A job is a run record (kind `dlq-replay`). Its selection is frozen when it is requested: either
explicit message ids, or a group plus the request instant (messages ingested later, edits made
later, are not part of it). The worker walks the selection in batches:

1. claim: each still-`failed` message becomes `replaying` for this job (ETag-conditional, so
   two jobs can never both own a message);
2. send the batch to the target at the job's rate;
3. settle: the messages become `replayed`, then the job's cursor and counts are saved.

A crash between 1 and 3 leaves messages `replaying` for this job. On resume they are sent again
carrying `pitcrew-possible-duplicate: true` and stored with possibleDuplicate set: nothing is
lost, and the only duplicates are marked ones (with message-id policy `keep`, Service Bus
duplicate detection drops them outright).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pitcrew.audit import AuditRecord
from pitcrew.deadletter.model import (
    DEADLETTER_PROPERTIES,
    EDIT_OF,
    ORIGINAL_MESSAGE_ID,
    POSSIBLE_DUPLICATE,
    REPLAY_ATTEMPT,
    REPLAY_OF,
    FailedMessage,
    utcnow,
)
from pitcrew.deadletter.service import DeadletterServices, Target, parse_target
from pitcrew.errors import InvalidInput, RetryLater
from pitcrew.state import RunRecord, StaleRun

log = logging.getLogger(__name__)

KIND = "dlq-replay"
MAX_IDS = 500
LEASE = timedelta(minutes=2)
TERMINAL = ("succeeded", "cancelled", "failed")
SUBSCRIPTION_PROPERTY = "pitcrew-replay-subscription"
_MAX_SEND_FAILURES = 5


# --------------------------------------------------------------------------- rate limiting


class RateLimiter:
    """Virtual scheduling: batch k may start no earlier than (messages before it) / rate after
    the first. Over N messages the job takes (N - last batch) / rate; no window of any length
    sees more than rate x window + one batch. The clock and sleep are injectable (tests)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def acquire(self, n: int) -> float:
        """Wait until `n` messages may go; returns the moment they may."""
        now = self._clock()
        if self._next is None or self._next < now:
            self._next = now
        start = self._next
        if start > now:
            self._sleep(start - now)
        self._next = start + n / self.rate
        return start


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class ReplayRequest:
    actor: str
    group: str | None = None
    ids: tuple[str, ...] = ()
    target: str | None = None
    rate: float | None = None
    batch_size: int | None = None
    message_id: str | None = None
    dry_run: bool = False

    @classmethod
    def from_json(cls, body: Any, actor: str) -> ReplayRequest:
        if not isinstance(body, dict):
            raise InvalidInput("body", "must be a JSON object")
        group, ids = body.get("group"), body.get("messages") or []
        if bool(group) == bool(ids):
            raise InvalidInput("body", "give exactly one of 'group' or 'messages'")
        if group is not None and not isinstance(group, str):
            raise InvalidInput("group", "must be a string")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InvalidInput("messages", "must be an array of message ids")
        if len(ids) > MAX_IDS:
            raise InvalidInput("messages", f"at most {MAX_IDS} ids; replay a group for more")
        for name, kind in (("rate", (int, float)), ("batchSize", (int,))):
            value = body.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
                raise InvalidInput(name, "must be a number")
        message_id = body.get("messageId")
        if message_id not in (None, "keep", "new"):
            raise InvalidInput("messageId", "must be 'keep' or 'new'")
        target = body.get("target")
        if target is not None:
            parse_target(str(target))
        return cls(actor=actor, group=group, ids=tuple(dict.fromkeys(ids)), target=target,
                   rate=body.get("rate"), batch_size=body.get("batchSize"),
                   message_id=message_id, dry_run=bool(body.get("dryRun")))


def request_replay(dl: DeadletterServices, request: ReplayRequest) -> RunRecord:
    """Persist the job with its frozen selection, audit who asked, wake the worker."""
    policy = dl.policy.replay
    rate = float(request.rate or policy.default_rate)
    if not 0 < rate <= policy.max_rate:
        raise InvalidInput("rate", f"must be above 0 and at most {policy.max_rate:g} (policy)")
    batch = int(request.batch_size or policy.batch_size)
    if not 1 <= batch <= 100:
        raise InvalidInput("batchSize", "must be from 1 to 100")
    if request.target and not policy.allow_redirect:
        raise InvalidInput("target", "redirecting replays is not allowed by policy")
    if request.group:
        dl.store.group(request.group)  # NotFound -> 400 naming it
    for message_id in request.ids:
        dl.store.get(message_id)
    now = utcnow()
    job_id = f"{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    selection: dict[str, Any] = (
        {"group": request.group, "until": now.isoformat()} if request.group
        else {"ids": list(request.ids)})
    run = RunRecord(kind=KIND, run_id=job_id, step="queued", status="queued", data={
        "actor": request.actor, "selection": selection, "target": request.target,
        "rate": rate, "batchSize": batch,
        "messageId": request.message_id or policy.message_id, "dryRun": request.dry_run,
        "requestedAt": now.isoformat(), "cursor": None, "total": None,
        "counts": {"sent": 0, "skipped": 0, "possibleDuplicates": 0, "planned": 0},
        "requested": None, "leaseUntil": None, "error": None, "sendFailures": 0,
    })
    created = dl.services.state.create_run(run)
    if created is None:
        raise RetryLater("a job with this id exists; retry")
    dl.services.audit.append(AuditRecord(
        actor=request.actor, action="dlq.replay.request", target=_selection_label(selection),
        outcome="planned" if request.dry_run else "queued", correlation_id=job_id,
        details={"target": request.target or "original", "rate": rate, "batchSize": batch,
                 "messageId": run.data["messageId"], "dryRun": request.dry_run,
                 "messages": len(request.ids) or None, "group": request.group}))
    dl.enqueue_job(job_id)
    return created


def _selection_label(selection: dict[str, Any]) -> str:
    if selection.get("group"):
        return f"dlq-group:{selection['group']}"
    return f"dlq-messages:{len(selection.get('ids') or [])}"


def job_view(run: RunRecord) -> dict[str, Any]:
    data = run.data
    return {"id": run.run_id, "status": run.status, "step": run.step,
            "selection": {k: v for k, v in data["selection"].items() if k != "ids"}
            | ({"messages": len(data["selection"]["ids"])} if "ids" in data["selection"] else {}),
            "target": data.get("target") or "original", "rate": data["rate"],
            "batchSize": data["batchSize"], "messageId": data["messageId"],
            "dryRun": data["dryRun"], "total": data.get("total"), "counts": data["counts"],
            "requested": data.get("requested"), "error": data.get("error"),
            "actor": data["actor"], "requestedAt": data["requestedAt"],
            "updatedAt": run.updated_at.isoformat()}


def control_job(dl: DeadletterServices, job_id: str, action: str, actor: str) -> RunRecord:
    """pause | resume | cancel. The worker sees the request at its next batch."""
    if action not in ("pause", "resume", "cancel"):
        raise InvalidInput("action", "must be pause, resume or cancel")
    for _ in range(10):
        run = get_job(dl, job_id)
        if run.status in TERMINAL:
            raise InvalidInput("job", f"{job_id} is already {run.status}")
        if action == "resume":
            if run.status != "paused":
                raise InvalidInput("job", f"{job_id} is {run.status}, not paused")
            run.status, run.data["requested"] = "queued", None
        elif run.status in ("queued", "paused"):
            # Nothing is running it: take effect now.
            run.status = "cancelled" if action == "cancel" else "paused"
            run.data["requested"] = None
        else:
            run.data["requested"] = action
        try:
            dl.services.state.save_run(run)
        except StaleRun:
            continue
        dl.services.audit.append(AuditRecord(
            actor=actor, action=f"dlq.replay.{action}", target=_selection_label(
                run.data["selection"]), outcome="succeeded", correlation_id=job_id,
            details={"status": run.status}))
        if action == "resume":
            dl.enqueue_job(job_id)
        return run
    raise RetryLater(f"job {job_id} is busy; retry")


def get_job(dl: DeadletterServices, job_id: str) -> RunRecord:
    run = dl.services.state.get_run(KIND, job_id)
    if run is None:
        raise InvalidInput("job", f"{job_id[:60]!r} was not found")
    return run


# --------------------------------------------------------------------------- the worker


@dataclass
class Outgoing:
    body: bytes
    properties: dict[str, Any]
    application_properties: dict[str, Any]


class ReplayWorker:
    """Runs one job for at most `budget` seconds, then hands back (the trigger re-enqueues)."""

    def __init__(self, dl: DeadletterServices, job_id: str, *, budget: float = 480.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.dl = dl
        self.job_id = job_id
        self.budget = budget
        self.clock = clock
        self.sleep = sleep

    # The outcome: "done", "paused", "cancelled", "continue" (budget spent), "busy", "failed".
    def run(self) -> str:
        state = self.dl.services.state
        run = state.get_run(KIND, self.job_id)
        if run is None:
            log.warning("replay job %s does not exist; nothing to do", self.job_id)
            return "done"
        if run.status in TERMINAL or run.status == "paused":
            return run.status
        lease = run.data.get("leaseUntil")
        now = utcnow()
        if run.status == "running" and lease and datetime.fromisoformat(lease) > now:
            return "busy"  # another worker holds it; it renews the lease every batch
        run.status, run.step = "running", "replaying"
        run.data["leaseUntil"] = (now + LEASE).isoformat()
        try:
            run = state.save_run(run)
        except StaleRun:
            return "busy"
        started = self.clock()
        limiter = RateLimiter(run.data["rate"], clock=self.clock, sleep=self.sleep)
        if run.data.get("total") is None:
            run.data["total"] = self._count(run)
            run = self._save(run)
            if run.status != "running":
                return run.status
        batches = self._batches(run)
        while True:
            if self.clock() - started > self.budget:
                return "continue"
            batch = next(batches, None)
            if batch is None:
                return self._finish(run, "succeeded")
            if run.data["dryRun"]:
                self._plan(run, batch)
            else:
                try:
                    self._replay(run, batch, limiter)
                except _SendFailed as failure:
                    run.data["sendFailures"] = run.data.get("sendFailures", 0) + 1
                    run.data["error"] = failure.reason
                    if run.data["sendFailures"] >= _MAX_SEND_FAILURES:
                        self._release(failure.messages, run)
                        run = self._save(run)
                        return self._finish(run, "failed")
                    self._save(run)
                    raise RetryLater(f"replay job {self.job_id}: send failed "
                                     f"({failure.reason}); the retry resumes") from None
            run.data["cursor"] = batch[-1][0]
            run = self._save(run)
            if run.status != "running":
                return run.status

    # ------------------------------------------------------------------ selection

    def _selection(self, run: RunRecord, after: Any) -> Iterator[tuple[Any, FailedMessage | None]]:
        """(cursor, message) in selection order, after the cursor; None: the id is gone."""
        from pitcrew.deadletter.store import NotFound

        selection = run.data["selection"]
        store = self.dl.store
        if selection.get("group"):
            until = datetime.fromisoformat(selection["until"])
            for message in store.in_group(selection["group"], ingested_until=until, after=after):
                yield message.id, message
            return
        ids = selection["ids"]
        start = 0 if after is None else int(after) + 1
        for index in range(start, len(ids)):
            try:
                yield index, store.get(ids[index])
            except NotFound:
                yield index, None

    def _count(self, run: RunRecord) -> int:
        return sum(1 for _, m in self._selection(run, None) if m is not None and
                   (m.status == "failed" or m.replay_job == self.job_id))

    def _batches(self, run: RunRecord) -> Iterator[list[tuple[Any, FailedMessage | None]]]:
        size = run.data["batchSize"]
        batch: list[tuple[Any, FailedMessage | None]] = []
        for item in self._selection(run, run.data.get("cursor")):
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    # ------------------------------------------------------------------ one batch

    def _plan(self, run: RunRecord, batch: list[tuple[Any, FailedMessage | None]]) -> None:
        counts = run.data["counts"]
        for _, message in batch:
            if message is not None and message.status == "failed":
                counts["planned"] += 1
            else:
                counts["skipped"] += 1

    def _replay(self, run: RunRecord, batch: list[tuple[Any, FailedMessage | None]],
                limiter: RateLimiter) -> None:
        store = self.dl.store
        counts = run.data["counts"]
        fresh: list[FailedMessage] = []
        in_doubt: list[FailedMessage] = []
        for _, message in batch:
            if message is None:
                counts["skipped"] += 1
            elif message.status == "failed":
                fresh.append(message)
            elif message.replay_job == self.job_id and message.status == "replaying":
                in_doubt.append(message)  # a crash came between claim and settle
            elif message.replay_job == self.job_id and message.status == "replayed":
                counts["sent"] += 1  # settled, but the cursor was not saved after it
                counts["possibleDuplicates"] += int(message.possible_duplicate)
            else:
                counts["skipped"] += 1  # archived, edited, or another job's
        targets = {m.id: self._target(run, m) for m in fresh + in_doubt}
        claims = [m.copy(status="replaying", replay_job=self.job_id,
                         replay_attempt=m.replay_attempt + 1,
                         sent_message_id=self._sent_id(run, m), replayed_to=targets[m.id].label)
                  for m in fresh]
        claimed = store.update_many(claims) if claims else []
        counts["skipped"] += len(claims) - len(claimed)
        for message in in_doubt:
            message.possible_duplicate = True
        sending = claimed + in_doubt
        if not sending:
            return
        bodies = dict(zip((m.id for m in sending),
                          store.bodies.get_many(m.id for m in sending), strict=True))
        by_target: dict[str, list[FailedMessage]] = {}
        for message in sending:
            by_target.setdefault(targets[message.id].label, []).append(message)
        limiter.acquire(len(sending))
        for messages in by_target.values():
            target = targets[messages[0].id]
            sender = self.dl.sender(target)
            items = [outgoing(m, bodies[m.id], target) for m in messages]
            try:
                sender.send_batch(items)
            except Exception as exc:
                raise _SendFailed(f"{type(exc).__name__} sending to {target.label}",
                                  sending) from exc
        now = utcnow()
        settled = store.update_many([m.copy(status="replayed", replayed_at=now)
                                     for m in sending])
        counts["sent"] += len(settled)
        counts["possibleDuplicates"] += sum(1 for m in settled if m.possible_duplicate)

    def _target(self, run: RunRecord, message: FailedMessage) -> Target:
        if run.data.get("target"):
            return parse_target(run.data["target"])
        return self.dl.original_target(message)

    def _sent_id(self, run: RunRecord, message: FailedMessage) -> str | None:
        original = message.properties.get("message_id")
        if run.data["messageId"] == "new":
            # Chosen before the send and stored with the claim, so a resend reuses it.
            return uuid.uuid4().hex
        return original

    def _release(self, messages: list[FailedMessage], run: RunRecord) -> None:
        """A job that gives up hands its in-doubt messages back as failed, marked."""
        fresh = []
        for message in messages:
            try:
                current = self.dl.store.get(message.id)
            except InvalidInput:
                continue
            if current.status == "replaying" and current.replay_job == self.job_id:
                fresh.append(current.copy(status="failed", possible_duplicate=True))
        self.dl.store.update_many(fresh)

    # ------------------------------------------------------------------ persistence

    def _save(self, run: RunRecord) -> RunRecord:
        """Save progress; if an operator asked to pause or cancel meanwhile, honour it."""
        state = self.dl.services.state
        for _ in range(10):
            run.data["leaseUntil"] = (utcnow() + LEASE).isoformat()
            requested = run.data.get("requested")
            if requested in ("pause", "cancel") and run.status == "running":
                run.status = "paused" if requested == "pause" else "cancelled"
                run.data["requested"] = None
                run.data["leaseUntil"] = None
                if run.status == "cancelled":
                    run.step = "done"
            try:
                return state.save_run(run)
            except StaleRun:
                latest = state.get_run(KIND, self.job_id)
                assert latest is not None
                # Our progress, their request.
                for key in ("cursor", "counts", "total", "error", "sendFailures"):
                    latest.data[key] = run.data[key]
                latest.status = run.status if latest.status == "running" else latest.status
                run = latest
        raise RetryLater(f"replay job {self.job_id} is contended; retry")

    def _finish(self, run: RunRecord, status: str) -> str:
        run.status, run.step = status, "done"
        run.data["leaseUntil"] = None
        run = self._save(run)
        data = run.data
        self.dl.services.audit.append(AuditRecord(
            actor=data["actor"], action="dlq.replay", target=_selection_label(data["selection"]),
            outcome=("planned" if data["dryRun"] else
                     "succeeded" if run.status == "succeeded" else "failed"),
            correlation_id=self.job_id,
            details={"status": run.status, "target": data.get("target") or "original",
                     "counts": data["counts"], "total": data.get("total"),
                     "performedBy": "app", "error": data.get("error")}))
        return run.status


class _SendFailed(Exception):
    def __init__(self, reason: str, messages: list[FailedMessage]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.messages = messages


def outgoing(message: FailedMessage, body: bytes, target: Target) -> Outgoing:
    """The message as it is sent again: every property, minus what dead-lettering added, plus
    the replay link."""
    props = {k: v for k, v in message.properties.items()
             if k not in ("dead_letter_source", "body_type", "event_type")}
    if message.sent_message_id:
        if message.sent_message_id != props.get("message_id"):
            app_original = props.get("message_id")
            props["message_id"] = message.sent_message_id
        else:
            app_original = None
    else:
        app_original = None
    app = {k: v for k, v in message.application_properties.items()
           if k not in DEADLETTER_PROPERTIES}
    app[REPLAY_OF] = message.id
    app[REPLAY_ATTEMPT] = message.replay_attempt
    if app_original:
        app[ORIGINAL_MESSAGE_ID] = app_original
    if message.edit_of:
        app[EDIT_OF] = message.edit_of
    if message.possible_duplicate:
        app[POSSIBLE_DUPLICATE] = True
    if target.subscription:
        app[SUBSCRIPTION_PROPERTY] = target.subscription
    return Outgoing(body=body, properties=props, application_properties=app)


def stale_jobs(dl: DeadletterServices) -> list[str]:
    """Jobs a crashed worker left running (lease lapsed) or queued without a worker."""
    now = utcnow()
    found = []
    for status in ("running", "queued"):
        for run in dl.services.state.list_runs(KIND, status=status):
            lease = run.data.get("leaseUntil")
            lapsed = lease is None or datetime.fromisoformat(lease) < now
            idle = now - run.updated_at.astimezone(UTC) > LEASE
            if lapsed and (status == "running" or idle):
                found.append(run.run_id)
    return found
