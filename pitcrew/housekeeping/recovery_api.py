"""HTTP use cases for recovery readiness (GET /api/backups, GET /api/drills, POST
/api/drills/{name}/run, POST /api/images/purge) and the entry points of its timers. Plain data
in, HttpResult out; the triggers only translate."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field

from pitcrew.audit import app_identity
from pitcrew.auth import Role, require
from pitcrew.bootstrap import get_services
from pitcrew.errors import InvalidInput
from pitcrew.housekeeping import backups, drills, images
from pitcrew.housekeeping.recovery_ports import RecoveryServices
from pitcrew.http.errors import HttpResult, http_errors
from pitcrew.http.models import (
    BackupsParams,
    DrillsParams,
    PageQuery,
    RequestModel,
    json_flag,
    validated,
)
from pitcrew.http.paging import Page, encode_token

_DRILL = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class RecoveryBody(RequestModel):
    """A body of the recovery routes: empty means `{}`; pydantic's own message names what is
    wrong."""

    empty_is_object: ClassVar[bool] = True

    @classmethod
    def of(cls, raw: Mapping[str, Any], **context: Any) -> Self:
        return validated(cls, {**raw, **context})


class DrillRunRequest(RecoveryBody):
    # true or false only: pydantic's lax bool would take "no" or 0 for a real run
    dry_run: Annotated[bool, BeforeValidator(json_flag("dryRun"))] = Field(default=True,
                                                                          alias="dryRun")
    manual_outcome: Literal["passed", "failed"] | None = Field(default=None,
                                                                alias="manualOutcome")
    rto_minutes: float | None = Field(default=None, alias="rtoMinutes", ge=0, le=100_000)
    note: str = Field(default="", max_length=500)


class PurgeImagesRequest(RecoveryBody):
    # true or false only: pydantic's lax bool would take "no" or 0 for a real run
    dry_run: Annotated[bool, BeforeValidator(json_flag("dryRun"))] = Field(default=True,
                                                                          alias="dryRun")
    registry: str | None = Field(default=None, max_length=100)


def _svc() -> RecoveryServices:
    return get_services().recovery


def _page(items: list[Any], params: PageQuery, key: str) -> dict[str, Any]:
    offset = params.continuation.get("o") if params.continuation else 0
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("continuation", "is not a continuation token pitcrew issued")
    chunk = items[offset:offset + params.limit]
    more = offset + params.limit < len(items)
    return Page(chunk, encode_token({"o": offset + params.limit}) if more else None).body(key)


@http_errors
def list_backups(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/backups?limit=&continuation=&failing=&check=&resource=: the last result of
    each check, its resources filtered the same way and at most MAX_LISTED_RESOURCES of them
    (`resourceCount` says how many matched)."""
    require(headers, Role.READER)
    wanted = BackupsParams.of(query)
    results = [view for view in (backups.result_view(result, failing=wanted.failing,
                                                      resource=wanted.resource)
                                 for result in backups.last_results(_svc())
                                 if wanted.check in (None, result.get("check")))
               if view is not None]
    return HttpResult(200, _page(results, wanted, "checks"))


@http_errors
def list_drills(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """GET /api/drills?limit=&continuation=&status=&failing=&account=: the drills with their
    last result and RTO."""
    require(headers, Role.READER)
    wanted = DrillsParams.of(query)
    svc = _svc()
    views = [view for view in (drills.drill_view(svc, rule) for rule in svc.policy.drills)
             if wanted.account in (None, view.get("account"))
             and wanted.status in (None, view.get("status"))
             and (view.get("problems") or not wanted.failing)]
    return HttpResult(200, _page(views, wanted, "drills"))


@http_errors
def run_drill(headers: Mapping[str, str], name: str, body: bytes) -> HttpResult:
    """POST /api/drills/{name}/run {"dryRun": true (default) | false, "manualOutcome": ...}."""
    principal = require(headers, Role.OPERATOR)
    if not _DRILL.match(name):
        raise InvalidInput("name", "is not a drill name")
    request = DrillRunRequest.from_body(body)
    svc = _svc()
    rule = svc.policy.drill(name)
    if rule is None:
        raise InvalidInput("name", f"no drill {name!r} in the policy")
    if request.manual_outcome is not None:
        drills.complete_manual(svc, rule, principal.actor, request.manual_outcome,
                               request.rto_minutes, request.note)
        return HttpResult(200, drills.drill_view(svc, rule))
    if request.dry_run or svc.plan_only:
        # 200 the plan; a call Azure failed makes it mode "unknown", the call and Azure's
        # reason in problems and azureError (never a 500).
        return HttpResult(200, drills.dry_run(svc, rule).to_dict())
    run = drills.start(svc, rule, principal.actor)
    busy = False
    try:
        run = drills.advance(svc, rule, run)
    except drills.DrillBusy as held:  # another caller (or the timer) is advancing it
        run, busy = held.run, held.run.status in drills.ACTIVE
    # 200: the run ended (succeeded, or failed: Azure's reason is in runProblems and
    # problems); 202: it goes on (restoring, retried after a transient error, or manual).
    status = 200 if run.status not in drills.ACTIVE else 202
    answer = {"run": run.run_id, "status": run.status, "step": run.step,
              "runProblems": list(run.data.get("problems") or []),
              **drills.drill_view(svc, rule)}
    if busy:
        answer["message"] = f"already running: run {run.run_id}"
    return HttpResult(status, answer)


@http_errors
def purge_images(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """POST /api/images/purge {"dryRun": true (default), "registry": login server}."""
    principal = require(headers, Role.OPERATOR)
    request = PurgeImagesRequest.from_body(body)
    results = images.run_purge(_svc(), dry_run=request.dry_run, actor=principal.actor,
                               registry=request.registry)
    return HttpResult(200, {"registries": [r.to_dict() for r in results]})


# ------------------------------------------------------------------ trigger entry points


def run_backup_checks() -> dict[str, bool]:
    return {c.check: not c.failing for c in backups.run_backup_checks(_svc())}


def run_due_drills() -> list[str]:
    """Each drill on its own; raises (DrillTimerFailed) only when every drill it tried failed."""
    return drills.run_due(_svc(), app_identity())


def resume_drills() -> list[str]:
    """Each run on its own; raises (DrillTimerFailed) only when every run it tried failed."""
    return drills.resume(_svc(), app_identity())


def run_image_purge() -> list[dict[str, Any]]:
    return [r.to_dict() for r in images.run_purge(_svc(), dry_run=False, actor=app_identity())]
