"""Scan jobs: `POST /api/dlq/scan` answers 202 at once; the `run_scan_job` queue trigger
(`pitcrew-scan-jobs`) ingests, saving progress after every batch, and the caller follows it at
`GET /api/dlq/scans/{id}`. A poison queue of thousands of messages no longer holds an HTTP
request open past the client's timeout.

A scan job is a run record (kind `dlq-scan`). It walks its sources in order, each until the
source is drained (ingest is idempotent, so a worker that dies and a retried queue message
only repeat recognised work), for up to 8 minutes per invocation, then re-enqueues itself.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from pitcrew.audit import AuditRecord
from pitcrew.deadletter.ingest import REFUSALS_LISTED, IngestReport, ingest_source, notify_pending
from pitcrew.deadletter.model import utcnow
from pitcrew.deadletter.policy import StorageQueueSource
from pitcrew.deadletter.ports import DeadletterServices
from pitcrew.errors import InvalidInput, NotFound, RetryLater
from pitcrew.state import RunRecord, StaleRun

log = logging.getLogger(__name__)

KIND = "dlq-scan"
STATUSES = ("queued", "running", "succeeded", "failed")
TERMINAL = ("succeeded", "failed")
BUDGET_SECONDS = 480.0
MAX_SOURCES = 100


def request_scan(dl: DeadletterServices, names: list[str] | None, actor: str) -> RunRecord:
    """Persist a scan job for the named sources (None: all), audit, wake the worker. A job
    with no source to scan would be queued, run and succeed having done nothing: refused."""
    configured = [s.name for s in dl.policy.sources]
    if names is not None and not names:
        raise InvalidInput("sources", "is an empty list: name at least one source of the "
                           "policy's deadletter.sources, or leave it out to scan them all")
    if not configured:
        raise InvalidInput("sources", "the policy names no dead-letter source "
                           "(deadletter.sources): there is nothing to scan")
    if names:
        if len(names) > MAX_SOURCES:
            raise InvalidInput("sources", f"at most {MAX_SOURCES} names")
        unknown = [n for n in names if n not in configured]
        if unknown:
            listed = ", ".join(repr(n[:64]) for n in unknown[:5])
            raise InvalidInput("sources", f"not in the policy: {listed}")
        wanted = list(dict.fromkeys(names))
    else:
        wanted = configured
    now = utcnow()
    job = f"{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    run = RunRecord(kind=KIND, run_id=job, step="queued", status="queued", data={
        "actor": actor, "sources": wanted, "pending": wanted, "requestedAt": now.isoformat(),
        "reports": {}, "total": None, "errors": {}, "finishedAt": None,
    })
    created = dl.state.create_run(run)
    if created is None:
        raise RetryLater("a scan job with this id exists; retry")
    dl.audit.append(AuditRecord(
        actor=actor, action="dlq.scan.request", target="dlq-sources", outcome="queued",
        correlation_id=job, details={"sources": wanted}))
    dl.scan_jobs.enqueue(job)
    return created


def get_scan(dl: DeadletterServices, job: str) -> RunRecord:
    run = dl.state.get_run(KIND, job)
    if run is None:
        raise NotFound("scan", job)
    return run


def scan_view(run: RunRecord) -> dict[str, Any]:
    data = run.data
    reports = data.get("reports") or {}
    received = sum(r.get("received", 0) for r in reports.values())
    stored = sum(r.get("stored", 0) for r in reports.values())
    unsettled = sum(r.get("unsettled", 0) for r in reports.values())
    refused = sum(r.get("refused", 0) for r in reports.values())
    return {"id": run.run_id, "status": run.status, "sources": data["sources"],
            "pending": data.get("pending") or [], "total": data.get("total"),
            "received": received, "stored": stored, "unsettled": unsettled, "refused": refused,
            "reports": [reports[n] for n in data["sources"] if n in reports],
            "errors": data.get("errors") or {}, "actor": data["actor"],
            "requestedAt": data["requestedAt"], "finishedAt": data.get("finishedAt"),
            "updatedAt": run.updated_at.isoformat()}


class ScanWorker:
    """Advance one scan job for at most `budget` seconds: "done", "continue" or "failed"."""

    def __init__(self, dl: DeadletterServices, job: str, *, budget: float = BUDGET_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dl = dl
        self.job = job
        self.budget = budget
        self.clock = clock

    def run(self) -> str:
        run = self.dl.state.get_run(KIND, self.job)
        if run is None:
            log.warning("scan job %s does not exist; nothing to do", self.job)
            return "done"
        if run.status in TERMINAL:
            return "done"
        started = self.clock()
        run.status, run.step = "running", "scanning"
        if run.data.get("total") is None:
            run.data["total"] = self._estimate(run.data["pending"])
        run = self._save(run)
        while run.data["pending"]:
            name = run.data["pending"][0]
            try:
                config = self.dl.policy.source(name)
            except KeyError:
                run.data["errors"][name] = "no longer in the policy"
                run.data["pending"] = run.data["pending"][1:]
                run = self._save(run)
                continue
            limit = self.dl.policy.scan_max_messages
            while True:
                if self.clock() - started > self.budget:
                    return "continue"
                before = dict(run.data["reports"].get(name) or {})
                progress = _Progress(self, run, name, before)
                try:
                    report = ingest_source(self.dl, config, on_batch=progress)
                except Exception as exc:  # the others still run; the job says which failed
                    log.error("scan job %s: source %s failed: %s", self.job, name,
                              type(exc).__name__)
                    run = progress.run
                    run.data["errors"][name] = type(exc).__name__
                    break
                run = progress.record(report)
                if report.received < limit or report.stored == 0:
                    break  # drained, or nothing new (what is left cannot be settled now)
            totals = run.data["reports"].get(name) or {}
            left = int(totals.get("unsettled", 0))
            refused = int(totals.get("refused", 0))
            if refused and name not in run.data["errors"]:
                # Messages the store would not take stay at the source: nothing was done with
                # them, so the job must not say it succeeded.
                run.data["errors"][name] = (
                    f"{refused} message(s) could not be stored and stay at the source ("
                    + "; ".join(f"{r['id']}: {r['reason']}"
                                for r in totals.get("refusedMessages", [])[:3]) + ")")
            elif left and name not in run.data["errors"]:
                # Stored but not settled at the source: the source is not drained, and the
                # job must not say it succeeded.
                run.data["errors"][name] = (
                    f"{left} message(s) could not be settled at the source during this scan; "
                    "they are stored, and any still at the source are settled by the next scan")
            run.data["pending"] = run.data["pending"][1:]
            run = self._save(run)
        notify_pending(self.dl)
        errors = run.data["errors"]
        run.status, run.step = ("failed" if errors else "succeeded"), "done"
        run.data["finishedAt"] = utcnow().isoformat()
        run = self._save(run)
        view = scan_view(run)
        self.dl.audit.append(AuditRecord(
            actor=run.data["actor"], action="dlq.scan", target="dlq-sources",
            outcome="failed" if errors else "succeeded", correlation_id=self.job,
            details={"received": view["received"], "stored": view["stored"],
                     "unsettled": view["unsettled"], "sources": run.data["sources"],
                     "errors": errors,
                     "performedBy": "app"}))
        return "failed" if errors else "done"

    def _estimate(self, names: list[str]) -> int | None:
        """Messages waiting, where the source can tell (storage poison queues)."""
        total = 0
        for name in names:
            try:
                config = self.dl.policy.source(name)
            except KeyError:
                continue
            if not isinstance(config, StorageQueueSource):
                return None
            try:
                total += self.dl.brokers.waiting(config)
            except Exception as exc:  # no poison queue yet, or no permission: no total
                log.info("scan job %s: no message count for %s (%s)", self.job, name,
                         type(exc).__name__)
        return total

    def _save(self, run: RunRecord) -> RunRecord:
        state = self.dl.state
        for _ in range(10):
            try:
                return state.save_run(run)
            except StaleRun:
                latest = state.get_run(KIND, self.job)
                if latest is None:
                    raise
                latest.data.update({k: run.data[k] for k in ("pending", "reports", "total",
                                                               "errors", "finishedAt")})
                latest.status, latest.step = run.status, run.step
                run = latest
        raise RetryLater(f"scan job {self.job} is contended; retry")


class _Progress:
    """Saves a source's running totals after each batch (earlier passes added in)."""

    def __init__(self, worker: ScanWorker, run: RunRecord, name: str,
                 before: dict[str, Any]) -> None:
        self.worker = worker
        self.run = run
        self.name = name
        self.before = before

    def __call__(self, report: IngestReport) -> None:
        self.record(report)

    def record(self, report: IngestReport) -> RunRecord:
        now = report.to_dict()
        merged: dict[str, Any] = {"source": self.name}
        for key in ("received", "stored", "alreadyStored", "unsettled"):
            merged[key] = int(self.before.get(key, 0)) + int(now[key])
        merged["groups"] = sorted(set(self.before.get("groups", [])) | set(now["groups"]))
        refused = int(self.before.get("refused", 0)) + int(now.get("refused", 0))
        if refused:
            merged["refused"] = refused
            merged["refusedMessages"] = (list(self.before.get("refusedMessages", []))
                                         + list(now.get("refusedMessages", [])))[:REFUSALS_LISTED]
        self.run.data["reports"][self.name] = merged
        self.run = self.worker._save(self.run)
        return self.run
