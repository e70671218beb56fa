"""HTTP use cases under /api/dlq (Reader to view, Operator to act), and the entry points the
dead-letter triggers call. Plain data in, HttpResult out; the triggers only translate."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pitcrew.api import HttpResult, http_errors
from pitcrew.auth import Role, require
from pitcrew.deadletter import queries as q
from pitcrew.errors import InvalidInput
from pitcrew.paging import limit_param

log = logging.getLogger(__name__)
MAX_JSON_DEPTH = 32
MAX_IDS = 500


def _dl() -> Any:
    from pitcrew.deadletter.service import get_deadletter

    return get_deadletter()


def _json(body: bytes) -> Any:
    """The request body as JSON; `{}` when empty. Oversize, non-JSON and deeply nested bodies
    are a 400 before any parsing recursion (`load_json`'s limits, at this area's depth)."""
    from pitcrew.events import load_json

    if not body or not body.strip():
        return {}
    return load_json(body, max_depth=MAX_JSON_DEPTH)


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").strip().lower() in ("1", "true", "yes")


@http_errors
def list_groups(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/dlq/groups?limit=&continuation=&since=&until= (last seen within the range)."""
    require(headers, Role.READER)
    limit = limit_param(query)
    after = q.after_param(query, q.GROUP_ID)
    since, until = q.time_range(query)
    page = _dl().store.groups_page(limit=limit, after=after, since=since, until=until)
    return HttpResult(200, page.map(lambda g: g.to_dict()).body("groups"))


@http_errors
def show_group(headers: Mapping[str, str], group: str, query: Mapping[str, str]) -> HttpResult:
    """GET /api/dlq/groups/{group}?limit=&continuation=&status=&since=&until=&text=&prop.K=V"""
    from pitcrew.deadletter.operations import group_view

    require(headers, Role.READER)
    q.group_id(group)
    limit = limit_param(query)
    after = q.after_param(query, q.MESSAGE_ID)
    flt = q.message_filter(query)
    return HttpResult(200, group_view(_dl(), group, flt, limit=limit, after=after))


@http_errors
def show_message(headers: Mapping[str, str], message: str,
                 query: Mapping[str, str]) -> HttpResult:
    from pitcrew.deadletter.operations import view_message

    principal = require(headers, Role.READER)
    q.message_id(message)
    return HttpResult(200, view_message(_dl(), message, actor=principal.actor,
                                        with_body=_flag(query, "body")))


@http_errors
def edit_message(headers: Mapping[str, str], message: str, body: bytes) -> HttpResult:
    from pitcrew.deadletter.operations import decode_body, edit_message

    principal = require(headers, Role.OPERATOR)
    q.message_id(message)
    request = _json(body)
    if not isinstance(request, dict):
        raise InvalidInput("body", "must be a JSON object")
    new_body = decode_body(request["body"]) if "body" in request else None
    props = request.get("applicationProperties")
    if props is not None and not isinstance(props, dict):
        raise InvalidInput("applicationProperties", "must be an object")
    edited = edit_message(_dl(), message, actor=principal.actor, body=new_body,
                          application_properties=props)
    return HttpResult(201, edited.summary())


@http_errors
def archive(headers: Mapping[str, str], body: bytes) -> HttpResult:
    from pitcrew.deadletter.operations import archive as do_archive

    principal = require(headers, Role.OPERATOR)
    request = _json(body)
    if not isinstance(request, dict):
        raise InvalidInput("body", "must be a JSON object")
    ids = request.get("messages") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("messages", "must be an array of message ids")
    if len(ids) > MAX_IDS:
        raise InvalidInput("messages", f"at most {MAX_IDS} ids; archive a group for more")
    for ident in ids:
        q.message_id(ident, "messages")
    if request.get("group") is not None:
        q.group_id(request["group"])
    result = do_archive(_dl(), actor=principal.actor, group=request.get("group"), ids=ids)
    return HttpResult(200, result)


@http_errors
def request_replay(headers: Mapping[str, str], body: bytes) -> HttpResult:
    from pitcrew.deadletter.replay import ReplayRequest, job_view
    from pitcrew.deadletter.replay import request_replay as do_request

    principal = require(headers, Role.OPERATOR)
    request = ReplayRequest.from_json(_json(body), principal.actor)
    run = do_request(_dl(), request)
    return HttpResult(202, job_view(run), {"Location": f"/api/dlq/replays/{run.run_id}"})


@http_errors
def list_replays(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/dlq/replays?limit=&continuation=&since=&until=&status= (requested within the
    range, default the last 30 days; oldest first)."""
    from pitcrew.deadletter.replay import KIND, job_view

    require(headers, Role.READER)
    limit = limit_param(query)
    page = q.jobs_page(_dl().runtime.table("runs"), KIND, query, limit=limit,
                       statuses=("queued", "running", "paused", "succeeded", "cancelled",
                                 "failed"))
    return HttpResult(200, page.map(job_view).body("jobs"))


@http_errors
def show_replay(headers: Mapping[str, str], job: str) -> HttpResult:
    from pitcrew.deadletter.replay import get_job, job_view

    require(headers, Role.READER)
    q.job_id(job)
    return HttpResult(200, job_view(get_job(_dl(), job)))


@http_errors
def control_replay(headers: Mapping[str, str], job: str, action: str) -> HttpResult:
    from pitcrew.deadletter.replay import control_job, job_view

    principal = require(headers, Role.OPERATOR)
    q.job_id(job)
    return HttpResult(200, job_view(control_job(_dl(), job, action[:20], principal.actor)))


@http_errors
def scan_now(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/dlq/scan {"sources": [...]}: 202 with a scan job to follow."""
    from pitcrew.deadletter.scans import request_scan, scan_view

    principal = require(headers, Role.OPERATOR)
    request = _json(body)
    if not isinstance(request, dict):
        raise InvalidInput("body", "must be a JSON object")
    names = request.get("sources")
    if names is not None and (not isinstance(names, list) or
                              not all(isinstance(n, str) for n in names)):
        raise InvalidInput("sources", "must be an array of source names")
    run = request_scan(_dl(), names, principal.actor)
    return HttpResult(202, scan_view(run), {"Location": f"/api/dlq/scans/{run.run_id}"})


@http_errors
def show_scan(headers: Mapping[str, str], scan: str) -> HttpResult:
    from pitcrew.deadletter.scans import get_scan, scan_view

    require(headers, Role.READER)
    q.job_id(scan, "scan")
    return HttpResult(200, scan_view(get_scan(_dl(), scan)))


@http_errors
def purge(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/dlq/purge {"group": G | "before": T, "dryRun": bool} (Operator, audited)."""
    from pitcrew.deadletter.purging import PurgeRequest, purge_now

    principal = require(headers, Role.OPERATOR)
    request = PurgeRequest.parse(_json(body))
    return HttpResult(200, purge_now(_dl(), request, principal.actor))


# ------------------------------------------------------------------ trigger entry points


def run_scan() -> None:
    """Timer: ingest every configured source."""
    from pitcrew.deadletter.ingest import scan

    scan(_dl())


def run_purge() -> dict[str, int]:
    from pitcrew.deadletter.operations import purge

    return purge(_dl())


def run_scan_job(job_id: str) -> str:
    """Queue trigger: advance one scan job for up to its time budget, then hand back."""
    from pitcrew.deadletter.scans import ScanWorker, enqueue

    dl = _dl()
    outcome = ScanWorker(dl, job_id.strip()).run()
    log.info("scan job %s: %s", job_id.strip()[:40], outcome)
    if outcome == "continue":
        enqueue(dl, job_id.strip())
    return outcome


def run_replay_job(job_id: str) -> str:
    """Queue trigger: advance one job for up to its time budget, then hand back."""
    from pitcrew.deadletter.replay import ReplayWorker

    dl = _dl()
    outcome = ReplayWorker(dl, job_id.strip()).run()
    log.info("replay job %s: %s", job_id, outcome)
    if outcome == "continue":
        dl.enqueue_job(job_id)
    return outcome


def resume_replay_jobs() -> list[str]:
    """Timer: jobs a crashed worker left behind are put back on the queue."""
    from pitcrew.deadletter.replay import resume_jobs

    return resume_jobs(_dl())
