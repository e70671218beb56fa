"""Replay jobs: persisted, rate-limited, resumable, at most one outstanding replay per message.

A job is a run record (kind `dlq-replay`). Its selection is frozen when it is requested: either
explicit message ids, or a group plus the request instant (messages ingested later, edits made
later, are not part of it). Its target is checked then, against the policy only
(pitcrew.deadletter.targets). The worker walks the selection in batches, and each batch in
chunks the token bucket lets through:

1. claim: each still-`failed` message becomes `replaying` for this job (ETag-conditional, so
   two jobs can never both own a message);
2. send the chunk to its target;
3. settle: the messages become `replayed`; after the batch the job's cursor and counts are saved.

A crash between 1 and 3 leaves messages `replaying` for this job. On resume they are sent again
carrying `pitcrew-possible-duplicate: true` and stored with possibleDuplicate set: nothing is
lost, and the only duplicates are marked ones (with message-id policy `keep`, Service Bus
duplicate detection drops them outright).

Every member of the selection ends in exactly one count: sent, skipped (with why), failed (with
why) or, until the walk reaches it, remaining; `total` is the selection's size.

A running job holds a short lease renewed by its heartbeat (every batch, and during the rate
limiter's waits); `resume_jobs` (every 30 s, never less often than a lease lasts) hands a job
whose heartbeat stopped to a new worker as soon as its lease lapses.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pitcrew.audit import AuditRecord, Outcome
from pitcrew.deadletter.model import (
    DEADLETTER_PROPERTIES,
    EDIT_OF,
    ORIGINAL_MESSAGE_ID,
    POSSIBLE_DUPLICATE,
    REPLAY_ATTEMPT,
    REPLAY_OF,
    FailedMessage,
    NotFound,
    Target,
    TargetMissing,
    utcnow,
)
from pitcrew.deadletter.notices import resolve_group
from pitcrew.deadletter.ports import DeadletterServices, Sender
from pitcrew.deadletter.targets import ReplayTargets, TargetRefused
from pitcrew.errors import ConfigurationError, InvalidInput, RetryLater
from pitcrew.http.models import ReplayRequest
from pitcrew.state import RunRecord, StaleRun

log = logging.getLogger(__name__)

KIND = "dlq-replay"
# A running job's lease; its heartbeat renews it. The resume timer must tick at least this
# often (functions/deadletter.py): then a tick always falls within a dead worker's last lease
# and schedules the takeover for the second after it ends (kill -> takeover <= LEASE + 1 s).
LEASE = timedelta(seconds=30)
HEARTBEAT = 10.0  # seconds between renewals while a job runs
QUEUED_STALE = timedelta(seconds=60)  # a queued job nobody picked up this long is re-enqueued
TERMINAL = ("succeeded", "cancelled", "failed")
SUBSCRIPTION_PROPERTY = "pitcrew-replay-subscription"
UNREADABLE_BLOB = "UnreadableDeadLetterBlob"  # what Event Grid ingest calls a blob it can't read
_MAX_SEND_FAILURES = 5
# What a claim and a settle change on a message (the store sends only these).
_CLAIM = ("status", "replay_job", "replay_attempt", "sent_message_id", "replayed_to")
_SETTLE = ("status", "replayed_at", "possible_duplicate")
_MAX_FAILURE_SAMPLES = 20
BODY_MISSING = "the stored body is gone (deleted or purged): there is nothing to send"
CANCELLED_IN_DOUBT = ("the job was cancelled after a failed send: handed back as failed, "
                      "marked possible duplicate (the send may have reached the target)")


# --------------------------------------------------------------------------- rate limiting


def burst_for(rate: float, batch_size: int) -> int:
    """How many messages may leave together: a tenth of a second's worth, at least one, never
    more than a batch. At --rate 2 that is one message every half second."""
    return max(1, min(batch_size, int(rate // 10)))


class TokenBucket:
    """`rate` tokens a second, at most `burst` held. Each message takes one token, whatever the
    batch size: over any window of w seconds at most rate x w + burst messages leave. The clock
    and sleep are injectable (tests, and the worker's heartbeat during waits)."""

    def __init__(self, rate: float, *, burst: int = 1,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, wanted: int) -> int:
        """Wait until min(wanted, burst) messages may go, take their tokens, return how many."""
        if wanted < 1:
            return 0
        n = min(wanted, self.burst)
        self._refill()
        if self._tokens < n:
            self._sleep((n - self._tokens) / self.rate)
            self._refill()
        self._tokens -= n  # a hair below zero after float rounding: the next wait absorbs it
        return n


# --------------------------------------------------------------------------- requests


def request_replay(dl: DeadletterServices, request: ReplayRequest) -> RunRecord:
    """Persist the job with its frozen selection, audit who asked, wake the worker."""
    policy = dl.policy.replay
    # 0 is a value the caller gave (refused below), not "use the default".
    rate = float(policy.default_rate if request.rate is None else request.rate)
    if not 0 < rate <= policy.max_rate:
        raise InvalidInput("rate", f"must be above 0 and at most {policy.max_rate:g} (policy)")
    batch = int(policy.batch_size if request.batch_size is None else request.batch_size)
    if not 1 <= batch <= 100:
        raise InvalidInput("batchSize", "must be from 1 to 100")
    sources: set[str] = set()
    if request.group:
        sources.add(dl.store.group(request.group).source)  # NotFound: api answers 400
    for message_id in request.ids:
        sources.add(dl.store.get(message_id).source)
    try:
        target = check_targets(dl, request.target, sources)
    except TargetRefused as refused:
        # A refused target may be someone probing for a host to hand the app's token to.
        log.warning("replay target refused for %s: %r", request.actor, (request.target or "")[:100])
        dl.audit.append(AuditRecord(
            actor=request.actor, action="dlq.replay.request",
            target=f"dlq-group:{request.group}" if request.group
            else f"dlq-messages:{len(request.ids)}", outcome="failed",
            correlation_id=request.group or request.ids[0],
            details={"refusedTarget": (request.target or "original")[:100],
                     "allowed": refused.allowed}))
        raise
    now = utcnow()
    job_id = f"{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    selection: dict[str, Any] = (
        {"group": request.group, "until": now.isoformat()} if request.group
        else {"ids": list(request.ids)})
    run = RunRecord(kind=KIND, run_id=job_id, step="queued", status="queued", data={
        "actor": request.actor, "selection": selection, "target": target,
        "rate": rate, "batchSize": batch,
        "messageId": request.message_id or policy.message_id, "dryRun": request.dry_run,
        "requestedAt": now.isoformat(), "cursor": None, "total": None,
        "counts": _zero_counts(), "skippedBy": {}, "failures": [],
        "requested": None, "leaseUntil": None, "leaseOwner": None, "heartbeatAt": None,
        "error": None, "sendFailures": 0,
    })
    created = dl.state.create_run(run)
    if created is None:
        raise RetryLater("a job with this id exists; retry")
    dl.audit.append(AuditRecord(
        actor=request.actor, action="dlq.replay.request", target=_selection_label(selection),
        outcome="planned" if request.dry_run else "queued", correlation_id=job_id,
        details={"target": target or "original", "rate": rate, "batchSize": batch,
                 "messageId": run.data["messageId"], "dryRun": request.dry_run,
                 "messages": len(request.ids) or None, "group": request.group}))
    dl.replay_jobs.enqueue(job_id)
    return created


def _selection_label(selection: dict[str, Any]) -> str:
    if selection.get("group"):
        return f"dlq-group:{selection['group']}"
    return f"dlq-messages:{len(selection.get('ids') or [])}"


def check_targets(dl: DeadletterServices, requested: str | None, sources: set[str]) -> str | None:
    """The job's target label (None: each message's own), refused unless the policy allows it
    for every source in the selection; and each target's connection must be configured. A
    refusal is a 400 that names the allowed targets."""
    targets = ReplayTargets(dl)
    label = targets.label_of(requested, sources) if requested else None
    for source in sorted(sources):
        target = targets.resolve(source, label)
        try:
            dl.sender(target)  # builds the client from the policy's setting; no I/O yet
        except ConfigurationError as exc:
            raise InvalidInput("target", f"{target.label} cannot be reached: {exc}") from None
    return label


def _zero_counts() -> dict[str, int]:
    return {"sent": 0, "skipped": 0, "failed": 0, "possibleDuplicates": 0, "planned": 0}


def _done(counts: dict[str, int]) -> int:
    return sum(counts.get(k, 0) for k in ("sent", "skipped", "failed", "planned"))


def _when(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


def _lease_live(run: RunRecord, now: datetime) -> bool:
    lease = _when(run.data.get("leaseUntil"))
    return lease is not None and lease > now


def is_stale(run: RunRecord, now: datetime | None = None) -> bool:
    """Running without a live lease (its worker died), or queued with nobody picking it up."""
    now = now or utcnow()
    if run.status == "running":
        return not _lease_live(run, now)
    if run.status == "queued":
        return now - run.updated_at.astimezone(UTC) > QUEUED_STALE
    return False


def job_view(run: RunRecord) -> dict[str, Any]:
    data = run.data
    now = utcnow()
    counts = {**_zero_counts(), **data["counts"]}
    total = data.get("total")
    beat = _when(data.get("heartbeatAt"))
    return {"id": run.run_id, "status": run.status, "step": run.step,
            "selection": {k: v for k, v in data["selection"].items() if k != "ids"}
            | ({"messages": len(data["selection"]["ids"])} if "ids" in data["selection"] else {}),
            "target": data.get("target") or "original", "rate": data["rate"],
            "batchSize": data["batchSize"], "messageId": data["messageId"],
            "dryRun": data["dryRun"], "total": total, "counts": counts,
            "remaining": None if total is None else max(0, total - _done(counts)),
            "skippedBy": data.get("skippedBy") or {}, "failures": data.get("failures") or [],
            "requested": data.get("requested"), "error": data.get("error"),
            "outcome": data.get("outcome"), "reason": data.get("reason"),
            "heartbeatAt": beat.isoformat() if beat else None,
            "heartbeatAgeSeconds": (round((now - beat).total_seconds(), 1)
                                    if beat and run.status == "running" else None),
            "leaseUntil": data.get("leaseUntil"), "stale": is_stale(run, now),
            "actor": data["actor"], "requestedAt": data["requestedAt"],
            "updatedAt": run.updated_at.isoformat()}


def control_job(dl: DeadletterServices, job_id: str, action: str, actor: str) -> RunRecord:
    """pause | resume | cancel. The worker sees the request at its next batch."""
    if action not in ("pause", "resume", "cancel"):
        raise InvalidInput("action", "must be pause, resume or cancel")
    for _ in range(10):
        run = get_job(dl, job_id)
        if ((action, run.status) in (("cancel", "cancelled"), ("pause", "paused"))
                or (action == "resume" and run.status in ("queued", "running")
                    and run.data.get("requested") is None)):
            # Asked twice: what was asked holds already. The same answer, nothing done again
            # (but a cancel finishes handing back what an interrupted first one left, and a
            # resume wakes a queued job again: a lost wake-up is then repaired at once).
            if action == "cancel":
                run = _release_cancelled(dl, run)
            dl.audit.append(AuditRecord(
                actor=actor, action=f"dlq.replay.{action}", target=_selection_label(
                    run.data["selection"]), outcome="skipped", correlation_id=job_id,
                details={"status": run.status, "reason": f"the job is already {run.status}"}))
            if action == "resume" and run.status == "queued":
                dl.replay_jobs.enqueue(job_id)
            return run
        if run.status in TERMINAL:
            raise InvalidInput("job", f"{job_id} is already {run.status}")
        if action == "resume":
            if run.status == "running" and run.data.get("requested") == "cancel":
                raise InvalidInput("job", f"{job_id} is being cancelled, not paused")
            if run.status == "paused":
                run.status = "queued"
            run.data["requested"] = None  # a running job's pending pause is withdrawn
        elif run.status in ("queued", "paused"):
            # Nothing is running it: take effect now.
            run.status = "cancelled" if action == "cancel" else "paused"
            run.data["requested"] = None
        else:
            run.data["requested"] = action
        try:
            dl.state.save_run(run)
        except StaleRun:
            continue
        # A pause or cancel of a running job is only asked for: the worker honours it at its
        # next batch. Recorded as queued (with what is pending), not as done.
        pending = run.data.get("requested")
        dl.audit.append(AuditRecord(
            actor=actor, action=f"dlq.replay.{action}", target=_selection_label(
                run.data["selection"]), outcome="queued" if pending else "succeeded",
            correlation_id=job_id,
            details={"status": run.status, **({"requested": pending} if pending else {})}))
        if action == "resume" and run.status == "queued":
            dl.replay_jobs.enqueue(job_id)
        if run.status == "cancelled":
            # A job cancelled between a failed send and its retry holds messages `replaying`:
            # nothing will ever settle them, so they go back as failed, marked.
            run = _release_cancelled(dl, run)
        return run
    raise RetryLater(f"job {job_id} is busy; retry")


def _release_cancelled(dl: DeadletterServices, run: RunRecord) -> RunRecord:
    """Hand back the in-doubt messages of a job cancelled while nothing ran it, and count them
    failed with the reason. Idempotent: a message handed back is no longer the job's."""
    released = _release(dl, run.run_id, _in_doubt(dl, run))
    if not released:
        return run
    tally = _Tally()
    for message in released:
        tally.fail(message, CANCELLED_IN_DOUBT)
    for _ in range(10):
        tally.apply(run)
        try:
            return dl.state.save_run(run)
        except StaleRun:
            latest = dl.state.get_run(KIND, run.run_id)
            if latest is None:
                return run
            run = latest
    log.warning("replay job %s: could not record the %d message(s) handed back on cancel",
                run.run_id, len(released))
    return run


def _in_doubt(dl: DeadletterServices, run: RunRecord) -> list[FailedMessage]:
    """The job's messages claimed and not settled: only the batch after the cursor can hold
    them (the cursor moves once a batch is settled)."""
    selection = run.data["selection"]
    store = dl.store
    cursor = run.data.get("cursor")
    if selection.get("group"):
        found: list[FailedMessage] = list(store.in_group(
            selection["group"], status="replaying", after=cursor,
            ingested_until=datetime.fromisoformat(selection["until"])))
    else:
        start = 0 if cursor is None else int(cursor) + 1
        found = []
        for message_id in selection["ids"][start:start + int(run.data["batchSize"])]:
            try:
                found.append(store.get(message_id))
            except NotFound:
                continue
    return [m for m in found if m.status == "replaying" and m.replay_job == run.run_id]


def _release(dl: DeadletterServices, job_id: str,
             messages: list[FailedMessage]) -> list[FailedMessage]:
    """A job that gives up hands its in-doubt messages back as failed, marked (the failed
    send may have reached the broker)."""
    fresh = []
    for message in messages:
        try:
            current = dl.store.get(message.id)
        except NotFound:
            continue
        if current.status == "replaying" and current.replay_job == job_id:
            fresh.append(current.copy(status="failed", possible_duplicate=True))
    return dl.store.update_many(fresh) if fresh else []


def get_job(dl: DeadletterServices, job_id: str) -> RunRecord:
    run = dl.state.get_run(KIND, job_id)
    if run is None:
        raise NotFound("job", job_id)
    return run


# --------------------------------------------------------------------------- the worker


_Batch = list[tuple[Any, FailedMessage | None]]  # (cursor, message; None: the id is gone)


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
        self.owner = uuid.uuid4().hex  # this worker's lease
        self._run: RunRecord | None = None
        self._beat = 0.0
        self._targets: ReplayTargets | None = None

    # The outcome: "succeeded", "failed", "paused", "cancelled", "continue" (budget spent: the
    # trigger re-enqueues), "busy" (another worker holds the lease), "done" (no such job). A
    # retryable send failure raises RetryLater instead (the platform retries the message).
    def run(self) -> str:
        state = self.dl.state
        run = state.get_run(KIND, self.job_id)
        if run is None:
            log.warning("replay job %s does not exist; nothing to do", self.job_id)
            return "done"
        if run.status in TERMINAL or run.status == "paused":
            return run.status
        if run.status == "running" and _lease_live(run, utcnow()):
            return "busy"  # another worker holds it; its heartbeat renews the lease
        if run.status == "running":
            log.warning("replay job %s: its worker's heartbeat stopped at %s; taking over",
                        self.job_id, run.data.get("heartbeatAt"))
        run.status, run.step = "running", "replaying"
        run.data["leaseOwner"] = self.owner
        self._stamp(run)
        try:
            run = state.save_run(run)
        except StaleRun:
            return "busy"
        self._run, self._beat = run, self.clock()
        self._targets = ReplayTargets(self.dl)
        try:
            return self._work(run)
        except _LostLease:
            log.warning("replay job %s was taken over by another worker; stopping", self.job_id)
            return "busy"
        except RetryLater:
            raise  # a send failure already handed the job back; or contention: retried
        except Exception as exc:
            return self._crashed(exc)

    def _crashed(self, exc: Exception) -> str:
        """An unexpected failure: never a job left `running` under a lease with no error. The
        error is recorded and the lease released; like a transient send failure the job is
        handed back for the platform's retry, and after as many it fails and hands its
        in-doubt messages back."""
        log.exception("replay job %s: unexpected %s", self.job_id, type(exc).__name__)
        run = self._run
        if run is None:
            raise exc
        reason = f"{type(exc).__name__}: {exc}"[:300]
        try:
            return self._send_failed(run, _SendFailed(reason, None, _Tally()))
        except _LostLease:
            return "busy"
        except RetryLater:
            raise
        except Exception:
            log.exception("replay job %s: could not record the failure", self.job_id)
            raise exc from None

    def _work(self, run: RunRecord) -> str:
        started = self.clock()
        data = run.data
        bucket = TokenBucket(data["rate"], burst=burst_for(data["rate"], data["batchSize"]),
                             clock=self.clock, sleep=self._pause)
        if data.get("total") is None:
            data["total"] = self._count(run)
            self._save(run)
            if run.status != "running":
                return run.status
        for batch in _read_ahead(self._batches(run)):
            if self.clock() - started > self.budget:
                return self._hand_back(run)
            if data["dryRun"]:
                self._plan(run, batch)
            else:
                try:
                    self._replay(run, batch, bucket)
                except _SendFailed as failure:
                    return self._send_failed(run, failure)
            data["cursor"] = batch[-1][0]
            self._save(run, apply_requests=True)
            if run.status != "running":
                return run.status
        return self._finish(run, "succeeded")

    # ------------------------------------------------------------------ selection

    def _selection(self, run: RunRecord, after: Any) -> Iterator[tuple[Any, FailedMessage | None]]:
        """(cursor, message) in selection order, after the cursor; None: the id is gone."""
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
        """Every member of the frozen selection, whatever its status: each one ends up sent,
        skipped or failed."""
        selection = run.data["selection"]
        if not selection.get("group"):
            return len(selection["ids"])
        return self.dl.store.count_in_group(
            selection["group"], ingested_until=datetime.fromisoformat(selection["until"]))

    def _batches(self, run: RunRecord) -> Iterator[list[tuple[Any, FailedMessage | None]]]:
        """The selection after the cursor in batches of batchSize."""
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

    def _sort(self, batch: list[tuple[Any, FailedMessage | None]], tally: _Tally
              ) -> list[FailedMessage]:
        """What this batch must send (fresh and in-doubt, in order); the rest is tallied."""
        work: list[FailedMessage] = []
        for _, message in batch:
            if message is None:
                tally.skip("missing")
            elif message.status == "failed":
                refusal = _refusal(message)
                if refusal:
                    tally.fail(message, refusal)
                else:
                    work.append(message)
            elif message.replay_job == self.job_id and message.status == "replaying":
                message.possible_duplicate = True  # a crash came between claim and settle
                work.append(message)
            elif message.replay_job == self.job_id and message.status == "replayed":
                tally.sent(message)  # settled, but the cursor was not saved after it
            elif message.status in ("replaying", "replayed") and message.replay_job:
                tally.skip("replayed" if message.status == "replayed" else "another job")
            else:
                tally.skip(message.status)
        return work

    def _plan(self, run: RunRecord, batch: list[tuple[Any, FailedMessage | None]]) -> None:
        tally = _Tally()
        for message in self._sort(batch, tally):
            if message.status == "failed":
                try:
                    self._target(run, message)
                except InvalidInput as exc:
                    tally.fail(message, exc.problem)
                    continue
                tally.counts["planned"] += 1
            else:
                tally.skip("replaying")
        tally.apply(run)

    def _replay(self, run: RunRecord, batch: list[tuple[Any, FailedMessage | None]],
                limiter: TokenBucket) -> None:
        """Send the batch in the chunks the bucket allows; claim, send and settle each chunk.
        The tally reaches the job only when the whole batch went (a retry walks it again)."""
        tally = _Tally()
        work = self._sort(batch, tally)
        try:
            targets = {m.id: self._target(run, m) for m in work}
        except InvalidInput as exc:
            raise _SendFailed(exc.problem, [m for m in work if m.status == "replaying"],
                              tally, permanent=True) from None
        done = 0
        while done < len(work):
            chunk = work[done:done + limiter.take(len(work) - done)]
            done += len(chunk)
            self._send_chunk(run, chunk, targets, tally)
            self._heartbeat()
        tally.apply(run)

    def _send_chunk(self, run: RunRecord, chunk: list[FailedMessage],
                    targets: dict[str, Target], tally: _Tally) -> None:
        store = self.dl.store
        in_doubt = [m for m in chunk if m.status == "replaying"]
        senders: dict[str, Sender] = {}
        for target in {targets[m.id].label: targets[m.id] for m in chunk}.values():
            try:
                # Building the sender is part of sending: a missing setting or an unreachable
                # namespace is a send failure like any other, never a job stuck `running`.
                senders[target.label] = self.dl.sender(target)
            except Exception as exc:
                permanent = isinstance(exc, ConfigurationError | TargetMissing)
                reason = (f"{target.label}: {exc}" if permanent else
                          f"{type(exc).__name__} connecting to {target.label}")
                raise _SendFailed(reason, in_doubt, tally, permanent=permanent) from exc
        claims = [m.copy(status="replaying", replay_job=self.job_id,
                         replay_attempt=m.replay_attempt + 1,
                         sent_message_id=self._sent_id(run, m), replayed_to=targets[m.id].label)
                  for m in chunk if m.status == "failed"]
        claimed = store.update_many(claims, fields=_CLAIM) if claims else []
        for _ in range(len(claims) - len(claimed)):
            tally.skip("claimed elsewhere")
        sending = claimed + in_doubt
        if not sending:
            return
        bodies = self._bodies(sending, tally)
        sending = [m for m in sending if m.id in bodies]
        by_target: dict[str, list[FailedMessage]] = {}
        for message in sending:
            by_target.setdefault(targets[message.id].label, []).append(message)
        for label, messages in by_target.items():
            target = targets[messages[0].id]
            try:
                doubled = senders[label].send_batch(
                    [outgoing(m, bodies[m.id], target) for m in messages]) or ()
            except Exception as exc:
                unsettled = [m for group in list(by_target.values())[
                    list(by_target).index(label):] for m in group]
                if isinstance(exc, TargetMissing):
                    raise _SendFailed(f"{label}: {exc}", unsettled, tally,
                                      permanent=True) from exc
                raise _SendFailed(f"{type(exc).__name__} sending to {label}", unsettled,
                                  tally) from exc
            now = utcnow()
            # A message the target may hold twice (its send repeated after a lost answer) is
            # marked so, in the store and in the job's counts: never a silent double.
            settled = [m.copy(status="replayed", replayed_at=now,
                              possible_duplicate=m.possible_duplicate or i in doubled)
                       for i, m in enumerate(messages)]
            store.update_many(settled, fields=_SETTLE)
            for message in settled:
                tally.sent(message)

    def _bodies(self, sending: list[FailedMessage], tally: _Tally) -> dict[str, bytes]:
        """The bodies of the claimed messages. A body that is gone (deleted, purged meanwhile)
        fails that message alone: it is handed back as `failed` with the reason and the rest
        go. Any other read failure is a transient failure of the batch (retried)."""
        store = self.dl.store
        try:
            return dict(zip((m.id for m in sending), store.bodies_of(sending), strict=True))
        except Exception as exc:
            first = exc
        bodies: dict[str, bytes] = {}
        gone: list[FailedMessage] = []
        for message in sending:
            if message.body is not None:
                bodies[message.id] = message.body
                continue
            try:
                bodies[message.id] = store.body(message.id)
            except NotFound:
                gone.append(message)
            except Exception as exc:
                raise _SendFailed(f"{type(exc).__name__} reading the stored bodies", sending,
                                  tally) from exc
        if not gone:  # the batch read failed, one by one they came: a passing fault
            log.info("replay job %s: reading bodies failed once (%s); read one by one",
                     self.job_id, type(first).__name__)
        # Handed back as failed (never sent by this claim; marked if an earlier one may have).
        handed = store.update_many([m.copy(status="failed") for m in gone],
                                   fields=("status", "possible_duplicate")) if gone else []
        for message in gone:
            tally.fail(message, BODY_MISSING)
        if len(handed) < len(gone):
            log.warning("replay job %s: %d message(s) whose body is gone changed meanwhile",
                        self.job_id, len(gone) - len(handed))
        return bodies

    def _target(self, run: RunRecord, message: FailedMessage) -> Target:
        """The policy's target for this message now (TargetRefused if the policy changed)."""
        targets = self._targets or ReplayTargets(self.dl)
        return targets.resolve(message.source, run.data.get("target"))

    def _sent_id(self, run: RunRecord, message: FailedMessage) -> str | None:
        original = message.properties.get("message_id")
        if run.data["messageId"] == "new":
            # Chosen before the send and stored with the claim, so a resend reuses it.
            return uuid.uuid4().hex
        return original

    # ------------------------------------------------------------------ failures

    def _send_failed(self, run: RunRecord, failure: _SendFailed) -> str:
        data = run.data
        data["sendFailures"] = data.get("sendFailures", 0) + 1
        data["error"] = failure.reason
        if failure.permanent or data["sendFailures"] >= _MAX_SEND_FAILURES:
            released = self._release(failure.messages if failure.messages is not None
                                     else _in_doubt(self.dl, run))
            for message in released:
                failure.tally.fail(message, failure.reason)
            failure.tally.apply(run)
            return self._finish(run, "failed")
        # Retryable: hand the job back (no lease) so the platform's retry resumes it at once,
        # walking this batch again; what was claimed and not settled goes out marked.
        run.status, run.step = "queued", "retry"
        self._save(run, lease=False)
        raise RetryLater(f"replay job {self.job_id}: send failed ({failure.reason}); "
                         f"attempt {data['sendFailures']} of {_MAX_SEND_FAILURES}, the retry "
                         "resumes") from None

    def _release(self, messages: list[FailedMessage]) -> list[FailedMessage]:
        return _release(self.dl, self.job_id, messages)

    # ------------------------------------------------------------------ lease and persistence

    def _stamp(self, run: RunRecord) -> None:
        now = utcnow()
        run.data["leaseUntil"] = (now + LEASE).isoformat()
        run.data["heartbeatAt"] = now.isoformat()

    def _pause(self, seconds: float) -> None:
        """The rate limiter's wait, cut in heartbeats so the lease never lapses meanwhile."""
        while seconds > 0:
            step = min(seconds, HEARTBEAT)
            self.sleep(step)
            seconds -= step
            self._heartbeat()

    def _heartbeat(self) -> None:
        if self._run is not None and self.clock() - self._beat >= HEARTBEAT:
            self._save(self._run)

    def _save(self, run: RunRecord, *, lease: bool = True, apply_requests: bool = False) -> None:
        """Save the job in place, renewing the lease while it runs. A pause or cancel an
        operator asked for is honoured between batches (`apply_requests`). If another worker
        took the job over, stop (_LostLease)."""
        state = self.dl.state
        for _ in range(10):
            if apply_requests and run.status == "running":
                requested = run.data.get("requested")
                if requested in ("pause", "cancel"):
                    run.status = "paused" if requested == "pause" else "cancelled"
                    run.data["requested"] = None
                    if run.status == "cancelled":
                        run.step = "done"
            if lease and run.status == "running":
                self._stamp(run)
            else:
                run.data["leaseUntil"] = None
            try:
                state.save_run(run)
                self._beat = self.clock()
                return
            except StaleRun:
                latest = state.get_run(KIND, self.job_id)
                if latest is None or latest.data.get("leaseOwner") != self.owner:
                    raise _LostLease from None
                # Ours is the progress; theirs the operator's request (or a status set while
                # nothing ran it).
                run.etag = latest.etag
                run.data["requested"] = latest.data.get("requested")
                if latest.status not in ("running", "queued"):
                    run.status, run.step = latest.status, latest.step
        raise RetryLater(f"replay job {self.job_id} is contended; retry")

    def _hand_back(self, run: RunRecord) -> str:
        """The time budget is spent: queue the job without a lease so the next message (the
        trigger re-enqueues it) resumes it at once."""
        run.status, run.step = "queued", "continue"
        self._save(run, lease=False)
        return "continue" if run.status == "queued" else run.status

    def _finish(self, run: RunRecord, status: str) -> str:
        data = run.data
        counts = {**_zero_counts(), **data["counts"]}
        if status == "succeeded" and data.get("total") != _done(counts):
            # Members purged while the job walked: the walk is the truth.
            log.info("replay job %s: %s members when counted, %s walked", self.job_id,
                     data.get("total"), _done(counts))
            data["total"] = _done(counts)
        run.status, run.step = status, "done"
        # What the job did, beside how it ended: a job that walked its selection and sent
        # nothing says so on the job itself (outcome "skipped" and why), not only in the audit.
        outcome, reason = _replay_outcome(status, bool(data["dryRun"]),
                                          {**_zero_counts(), **data["counts"]},
                                          data.get("skippedBy") or {})
        data["outcome"], data["reason"] = outcome, reason
        self._save(run, lease=False)
        if run.status != status:  # an operator's cancel landed first
            outcome, reason = _replay_outcome(run.status, bool(data["dryRun"]),
                                              {**_zero_counts(), **data["counts"]},
                                              data.get("skippedBy") or {})
        group = data["selection"].get("group")
        if group and run.status == "succeeded" and not data["dryRun"]:
            resolve_group(self.dl, group, "replayed")
        self.dl.audit.append(AuditRecord(
            actor=data["actor"], action="dlq.replay", target=_selection_label(data["selection"]),
            outcome=outcome, correlation_id=self.job_id,
            details={"status": run.status, "target": data.get("target") or "original",
                     "counts": data["counts"], "total": data.get("total"),
                     "skippedBy": data.get("skippedBy"), "performedBy": "app",
                     "error": data.get("error"), **({"reason": reason} if reason else {})}))
        return run.status


def _replay_outcome(status: str, dry_run: bool, counts: dict[str, int],
                    skipped_by: dict[str, int]) -> tuple[Outcome, str | None]:
    """The audit outcome of a finished job, and why when it is not "succeeded": a job that
    walked its whole selection succeeded only if it sent something and refused nothing."""
    if dry_run:
        return "planned", None
    if status != "succeeded":
        return "failed", None
    if counts["failed"]:
        return "failed", (f"{counts['failed']} message(s) could not be replayed (see the "
                          f"job's failures); {counts['sent']} sent")
    if not counts["sent"]:
        why = ", ".join(f"{n} {k}" for k, n in sorted(skipped_by.items()))
        return "skipped", ("nothing was sent: " + (f"every message was skipped ({why})"
                                                   if why else "the selection was empty"))
    return "succeeded", None


def _read_ahead(batches: Iterator[_Batch]) -> Iterator[_Batch]:
    """The batches, each next one read while the one before is claimed, sent and settled: the
    page read waits no longer in line with the sends. Reading early changes nothing the
    worker relies on: each message is still claimed ETag-conditionally when its batch comes
    (a row changed since it was read is skipped, never sent twice), and the job's other
    batches touch other rows. At most two batches are held."""
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dlq-read")
    try:
        pending = reader.submit(next, batches, None)
        while (batch := pending.result()) is not None:
            pending = reader.submit(next, batches, None)
            yield batch
    finally:
        # A job handed back or stopped early leaves at most one read running; it ends alone.
        reader.shutdown(wait=False, cancel_futures=True)


def _refusal(message: FailedMessage) -> str | None:
    """Why a message cannot be replayed as stored, if it cannot."""
    if (message.source_kind == "eventgrid-blob" and message.reason == UNREADABLE_BLOB
            and not message.edit_of):
        return ("the dead-letter blob held no Event Grid events, so there is no event to "
                "publish again; view it, and edit it into one to replay it")
    return None


class _Tally:
    """One batch's counts, applied to the job only once the batch is through."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.skipped_by: Counter[str] = Counter()
        self.failures: list[dict[str, str]] = []

    def skip(self, why: str) -> None:
        self.counts["skipped"] += 1
        self.skipped_by[why] += 1

    def sent(self, message: FailedMessage) -> None:
        self.counts["sent"] += 1
        self.counts["possibleDuplicates"] += int(message.possible_duplicate)

    def fail(self, message: FailedMessage, why: str) -> None:
        self.counts["failed"] += 1
        self.failures.append({"message": message.id, "reason": why[:300]})

    def apply(self, run: RunRecord) -> None:
        data = run.data
        counts = data["counts"]
        for key, n in self.counts.items():
            counts[key] = counts.get(key, 0) + n
        skipped_by = data.setdefault("skippedBy", {})
        for key, n in self.skipped_by.items():
            skipped_by[key] = skipped_by.get(key, 0) + n
        failures = data.setdefault("failures", [])
        failures.extend(self.failures[:max(0, _MAX_FAILURE_SAMPLES - len(failures))])


class _SendFailed(Exception):
    def __init__(self, reason: str, messages: list[FailedMessage] | None, tally: _Tally, *,
                 permanent: bool = False) -> None:
        """`messages`: the in-doubt ones to hand back if the job gives up; None: unknown (an
        unexpected failure), found from the store then."""
        super().__init__(reason)
        self.reason = reason
        self.messages = messages
        self.tally = tally
        self.permanent = permanent


class _LostLease(Exception):
    """Another worker took the job over (this one's heartbeat had lapsed)."""


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


def resume_jobs(dl: DeadletterServices) -> list[str]:
    """The timer (every 30 s): a stale job is re-enqueued now; a running one gets a check
    delivered just after its lease ends. A live worker renews its lease first, and the check
    finds it busy; a dead one renews nothing, and since ticks come at least once a lease, one
    of them falls within its last lease: the job is taken over at most LEASE + 1 s after the
    worker died. Returns the jobs resumed now."""
    now = utcnow()
    resumed: list[str] = []
    for status in ("running", "queued"):
        for run in dl.state.list_runs(KIND, status=status):
            if is_stale(run, now):
                log.warning("replay job %s has no live worker; resuming it", run.run_id)
                dl.replay_jobs.enqueue(run.run_id)
                resumed.append(run.run_id)
            elif run.status == "running":
                lease = _when(run.data.get("leaseUntil"))
                if lease is not None:
                    delay = math.ceil((lease - now).total_seconds()) + 1
                    dl.replay_jobs.enqueue(run.run_id, delay=min(delay, 120))
    return resumed
