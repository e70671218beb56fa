"""HTTP use cases under /api/dlq (Reader to view, Operator to act), and the entry points the
dead-letter triggers call. Plain data in, HttpResult out; the triggers only translate."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pitcrew.api import HttpResult, http_errors
from pitcrew.auth import Role, require
from pitcrew.errors import InvalidInput

log = logging.getLogger(__name__)


def _dl() -> Any:
    from pitcrew.deadletter.service import get_deadletter

    return get_deadletter()


def _json(body: bytes) -> Any:
    from pitcrew.events import load_json

    return load_json(body) if body and body.strip() else {}


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").strip().lower() in ("1", "true", "yes")


@http_errors
def list_groups(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    require(headers, Role.READER)
    groups = sorted(_dl().store.groups(), key=lambda g: g.last_seen, reverse=True)
    return HttpResult(200, {"groups": [g.to_dict() for g in groups]})


@http_errors
def show_group(headers: Mapping[str, str], group: str, query: Mapping[str, str]) -> HttpResult:
    from pitcrew.deadletter.operations import group_view

    require(headers, Role.READER)
    limit = query.get("limit", "100")
    if not limit.isdigit() or not 0 <= int(limit) <= 1000:
        raise InvalidInput("limit", "must be a whole number from 0 to 1000")
    return HttpResult(200, group_view(_dl(), group, limit=int(limit)))


@http_errors
def show_message(headers: Mapping[str, str], message: str,
                 query: Mapping[str, str]) -> HttpResult:
    from pitcrew.deadletter.operations import view_message

    principal = require(headers, Role.READER)
    return HttpResult(200, view_message(_dl(), message, actor=principal.actor,
                                        with_body=_flag(query, "body")))


@http_errors
def edit_message(headers: Mapping[str, str], message: str, body: bytes) -> HttpResult:
    from pitcrew.deadletter.operations import decode_body, edit_message

    principal = require(headers, Role.OPERATOR)
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
def list_replays(headers: Mapping[str, str]) -> HttpResult:
    from pitcrew.deadletter.replay import KIND, job_view

    require(headers, Role.READER)
    runs = sorted(_dl().services.state.list_runs(KIND), key=lambda r: r.created_at, reverse=True)
    return HttpResult(200, {"jobs": [job_view(r) for r in runs[:100]]})


@http_errors
def show_replay(headers: Mapping[str, str], job: str) -> HttpResult:
    from pitcrew.deadletter.replay import get_job, job_view

    require(headers, Role.READER)
    return HttpResult(200, job_view(get_job(_dl(), job)))


@http_errors
def control_replay(headers: Mapping[str, str], job: str, action: str) -> HttpResult:
    from pitcrew.deadletter.replay import control_job, job_view

    principal = require(headers, Role.OPERATOR)
    return HttpResult(200, job_view(control_job(_dl(), job, action, principal.actor)))


@http_errors
def scan_now(headers: Mapping[str, str], body: bytes) -> HttpResult:
    from pitcrew.deadletter.ingest import scan

    require(headers, Role.OPERATOR)
    request = _json(body)
    names = request.get("sources") if isinstance(request, dict) else None
    if names is not None and (not isinstance(names, list) or
                              not all(isinstance(n, str) for n in names)):
        raise InvalidInput("sources", "must be an array of source names")
    reports = scan(_dl(), names)
    return HttpResult(200, {"sources": [r.to_dict() for r in reports]})


# ------------------------------------------------------------------ trigger entry points


def run_scan() -> None:
    """Timer: ingest every configured source."""
    from pitcrew.deadletter.ingest import scan

    scan(_dl())


def run_purge() -> dict[str, int]:
    from pitcrew.deadletter.operations import purge

    return purge(_dl())


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
    from pitcrew.deadletter.replay import stale_jobs

    dl = _dl()
    stale = stale_jobs(dl)
    for job_id in stale:
        log.warning("replay job %s has no live worker; resuming it", job_id)
        dl.enqueue_job(job_id)
    return stale
