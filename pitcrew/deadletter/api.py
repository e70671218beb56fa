"""HTTP use cases under /api/dlq (Reader to view, Operator to act), and the entry points the
dead-letter triggers call. Plain data in, HttpResult out; the triggers only translate."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pitcrew import links
from pitcrew.auth import Role, require
from pitcrew.bootstrap import get_services
from pitcrew.deadletter import queries as q
from pitcrew.deadletter.ingest import scan
from pitcrew.deadletter.operations import archive as do_archive
from pitcrew.deadletter.operations import edit_message as do_edit
from pitcrew.deadletter.operations import group_view, view_message
from pitcrew.deadletter.operations import purge as do_retention_purge
from pitcrew.deadletter.ports import DeadletterServices
from pitcrew.deadletter.purging import purge_now
from pitcrew.deadletter.replay import (
    KIND,
    ReplayWorker,
    control_job,
    get_job,
    job_view,
    resume_jobs,
)
from pitcrew.deadletter.replay import request_replay as do_request
from pitcrew.deadletter.scans import ScanWorker, get_scan, request_scan, scan_view
from pitcrew.errors import NotFound
from pitcrew.http.errors import HttpResult, http_errors
from pitcrew.http.models import (
    ArchiveRequest,
    EditRequest,
    GroupsQuery,
    JobsQuery,
    MessageQuery,
    MessagesQuery,
    PurgeRequest,
    ReplayRequest,
    ScanRequest,
)

log = logging.getLogger(__name__)


def _dl() -> DeadletterServices:
    return get_services().deadletter


@contextmanager
def _named_in_body() -> Iterator[None]:
    """A group or message that a request's body names and that does not exist makes the body
    wrong: a 400 naming the field. (An id in the path names the resource itself: a 404.)"""
    try:
        yield
    except NotFound as missing:
        raise missing.as_input() from None


@http_errors
def list_groups(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/dlq/groups?limit=&continuation=&since=&until=&source=&entity= (last seen within
    the range; of one source the policy names; of one entity, exactly)."""
    require(headers, Role.READER)
    dl = _dl()
    wanted = GroupsQuery.of(query, sources=tuple(s.name for s in dl.policy.sources))
    page = dl.store.groups_page(limit=wanted.limit, after=wanted.after, since=wanted.since,
                                until=wanted.until, source=wanted.source, entity=wanted.entity)
    return HttpResult(200, page.map(lambda g: g.to_dict()).body("groups"))


@http_errors
def show_group(headers: Mapping[str, str], group: str, query: Mapping[str, str]) -> HttpResult:
    """GET /api/dlq/groups/{group}?limit=&continuation=&status=&since=&until=&text=&prop.K=V"""
    require(headers, Role.READER)
    q.group_id(group)
    wanted = MessagesQuery.of(query)
    return HttpResult(200, group_view(_dl(), group, wanted.filter(), limit=wanted.limit,
                                      after=wanted.after))


@http_errors
def show_message(headers: Mapping[str, str], message: str,
                 query: Mapping[str, str]) -> HttpResult:
    """GET /api/dlq/messages/{id}?body=true (the body is decoded and its reading audited)."""
    principal = require(headers, Role.READER)
    q.message_id(message)
    wanted = MessageQuery.of(query)
    return HttpResult(200, view_message(_dl(), message, actor=principal.actor,
                                        with_body=wanted.body))


@http_errors
def edit_message(headers: Mapping[str, str], message: str, body: bytes) -> HttpResult:
    principal = require(headers, Role.OPERATOR)
    q.message_id(message)
    request = EditRequest.from_body(body)
    edited = do_edit(_dl(), message, actor=principal.actor, body=request.body,
                     application_properties=request.application_properties)
    return HttpResult(201, edited.summary())


@http_errors
def archive(headers: Mapping[str, str], body: bytes) -> HttpResult:
    principal = require(headers, Role.OPERATOR)
    request = ArchiveRequest.from_body(body)
    with _named_in_body():
        result = do_archive(_dl(), actor=principal.actor, group=request.group,
                            ids=list(request.ids))
    return HttpResult(200, result)


@http_errors
def request_replay(headers: Mapping[str, str], body: bytes) -> HttpResult:
    principal = require(headers, Role.OPERATOR)
    request = ReplayRequest.from_body(body, actor=principal.actor)
    with _named_in_body():
        run = do_request(_dl(), request)
    return HttpResult(202, job_view(run),
                      {"Location": links.location(f"/api/dlq/replays/{run.run_id}")})


@http_errors
def list_replays(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/dlq/replays?limit=&continuation=&since=&until=&status= (requested within the
    range, default the last 30 days; oldest first)."""
    require(headers, Role.READER)
    wanted = JobsQuery.of(query)
    assert wanted.since is not None and wanted.until is not None  # the range is always bounded
    page = q.jobs_page(_dl().state, KIND, since=wanted.since, until=wanted.until,
                       limit=wanted.limit, status=wanted.status, after=wanted.after)
    return HttpResult(200, page.map(job_view).body("jobs"))


@http_errors
def show_replay(headers: Mapping[str, str], job: str) -> HttpResult:
    require(headers, Role.READER)
    q.job_id(job)
    return HttpResult(200, job_view(get_job(_dl(), job)))


@http_errors
def control_replay(headers: Mapping[str, str], job: str, action: str) -> HttpResult:
    principal = require(headers, Role.OPERATOR)
    q.job_id(job)
    return HttpResult(200, job_view(control_job(_dl(), job, action[:20], principal.actor)))


@http_errors
def scan_now(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/dlq/scan {"sources": [...]}: 202 with a scan job to follow."""
    principal = require(headers, Role.OPERATOR)
    request = ScanRequest.from_body(body)
    run = request_scan(_dl(), request.sources, principal.actor)
    return HttpResult(202, scan_view(run),
                      {"Location": links.location(f"/api/dlq/scans/{run.run_id}")})


@http_errors
def show_scan(headers: Mapping[str, str], scan: str) -> HttpResult:
    require(headers, Role.READER)
    q.job_id(scan, "scan")
    return HttpResult(200, scan_view(get_scan(_dl(), scan)))


@http_errors
def purge(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/dlq/purge {"group": G | "before": T, "dryRun": bool} (Operator, audited)."""
    principal = require(headers, Role.OPERATOR)
    request = PurgeRequest.from_body(body)
    with _named_in_body():
        return HttpResult(200, purge_now(_dl(), request, principal.actor))


# ------------------------------------------------------------------ trigger entry points


def run_scan() -> None:
    """Timer: ingest every configured source."""
    scan(_dl())


def run_purge() -> dict[str, int]:
    return do_retention_purge(_dl())


def run_scan_job(job_id: str) -> str:
    """Queue trigger: advance one scan job for up to its time budget, then hand back."""
    dl = _dl()
    outcome = ScanWorker(dl, job_id.strip()).run()
    log.info("scan job %s: %s", job_id.strip()[:40], outcome)
    if outcome == "continue":
        dl.scan_jobs.enqueue(job_id.strip())
    return outcome


def run_replay_job(job_id: str) -> str:
    """Queue trigger: advance one job for up to its time budget, then hand back."""
    dl = _dl()
    outcome = ReplayWorker(dl, job_id.strip()).run()
    log.info("replay job %s: %s", job_id, outcome)
    if outcome == "continue":
        dl.replay_jobs.enqueue(job_id)
    return outcome


def resume_replay_jobs() -> list[str]:
    """Timer: jobs a crashed worker left behind are put back on the queue."""
    return resume_jobs(_dl())
