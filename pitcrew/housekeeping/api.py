"""The expiry sweep's entry points: the `sweep_expiry` timer, `POST /api/expiry/sweep` (role
Rotator: it may start rotations and renewals) and `GET /api/expiry` (role Reader)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, BeforeValidator, Field

from pitcrew.auth import Role, require
from pitcrew.bootstrap import get_services
from pitcrew.errors import InvalidInput
from pitcrew.housekeeping.expiry import CLASSES, Sweeper, sweep_due
from pitcrew.http.errors import HttpResult, http_errors
from pitcrew.http.models import PageQuery, RequestModel, choice, json_flag
from pitcrew.policy import Policy

log = logging.getLogger(__name__)
KINDS = ("secret", "key", "certificate")


def _vault(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not 3 <= len(value.strip()) <= 24 or not all(
            c.isascii() and (c.isalnum() or c == "-") for c in value.strip()):
        raise InvalidInput("vault", "is not a Key Vault name (3-24 letters, digits, -)")
    return value.strip()


class ExpiryQuery(PageQuery):
    """`GET /api/expiry?vault=&class=&kind=&limit=&continuation=`."""

    vault: Annotated[str | None, BeforeValidator(_vault)] = None
    cls: Annotated[str | None, BeforeValidator(choice("class", CLASSES, fold_case=True))] = Field(
        default=None, validation_alias=AliasChoices("class", "cls"))
    kind: Annotated[str | None, BeforeValidator(choice("kind", KINDS, fold_case=True))] = None


class SweepRequest(RequestModel):
    """`POST /api/expiry/sweep {"dry_run"?, "fix"?, "vault"?}`."""

    empty_is_object: ClassVar[bool] = True
    dry_run: Annotated[bool, BeforeValidator(json_flag("dry_run"))] = Field(
        default=False, validation_alias=AliasChoices("dry_run", "dryRun"))
    fix: Annotated[bool, BeforeValidator(json_flag("fix"))] = False
    vault: Annotated[str | None, BeforeValidator(_vault)] = None


def _known_vault(policy: Policy, vault: str | None) -> list[str]:
    if vault is None:
        return list(policy.expiry.vaults)
    for name in policy.expiry.vaults:
        if name.lower() == vault.lower():
            return [name]
    raise InvalidInput("vault", f"{vault!r} is not one of expiry.vaults in pitcrew.yaml "
                       f"({', '.join(policy.expiry.vaults) or 'none'})")


@http_errors
def request_sweep(headers: Mapping[str, str], body: bytes) -> HttpResult:
    """Sweep now; answers the report (per vault: counts, errors, what needs attention)."""
    principal = require(headers, Role.ROTATOR)
    request = SweepRequest.from_body(body)
    services = get_services()
    vaults = _known_vault(services.policy, request.vault)
    report = Sweeper(services, actor=principal.actor, dry_run=request.dry_run,
                     fix=request.fix).run(vaults)
    return HttpResult(200, report.to_dict())


@http_errors
def list_expiry(headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResult:
    """The last sweep's findings, one page at a time, by vault then kind and name."""
    require(headers, Role.READER)
    wanted = ExpiryQuery.of(query)
    page = get_services().housekeeping.findings.page(
        vault=wanted.vault, cls=wanted.cls, kind=wanted.kind, limit=wanted.limit,
        continuation=wanted.continuation)
    return HttpResult(200, page.map(lambda f: f.to_dict()).body("objects"))


def sweep_expiry() -> dict[str, Any] | None:
    """The sweep_expiry timer (hourly): sweeps once per `expiry.interval_hours`."""
    report = sweep_due(get_services())
    if report is not None:
        log.info("expiry sweep %s: %s", report.sweep_id,
                 {v.vault: v.counts() for v in report.vaults})
        return report.to_dict()
    return None
