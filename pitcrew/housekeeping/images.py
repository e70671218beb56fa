"""Image purge, done by pitcrew itself and verified after each run.

Why pitcrew's own purge rather than an ACR task running `acr purge`: infra grants pitcrew
AcrDelete + AcrPull on each purged registry (infra/modules/registry-purge.bicep) and no ACR task
exists; `acr purge` knows tag regexes and ages but not which images running deployments use, and
its outcome is only in a task log. pitcrew decides from the policy (keep the newest N, older than
D days, protected tag patterns, the in-use images) and the registry's own lock flags (a manifest
with writeEnabled or deleteEnabled false is kept), deletes manifests by digest, and then checks
its run: every delete succeeded, every in-use image still resolves to the digest it had, the
count and bytes removed. A failing run is one grouped alert of the `image-purge` check.

A registry that cannot be reached or read (DNS, firewall, outage, a refusal) is a failing
result naming why, as the backup checks report an unreadable resource: the other registries
are still purged, and the run is recorded, audited and alerted as usual. Its audit outcome is
`failed`, on a dry run too (a clean dry run is `planned`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pitcrew.audit import AuditRecord
from pitcrew.errors import InvalidInput, error_summary
from pitcrew.housekeeping.backups import CheckResult, ResourceResult, report
from pitcrew.housekeeping.recovery_policy import RegistryRule
from pitcrew.housekeeping.recovery_ports import Manifest, RecoveryServices
from pitcrew.state import RunRecord

log = logging.getLogger(__name__)

KIND = "image-purge"


@dataclass
class Candidate:
    repository: str
    digest: str
    tags: tuple[str, ...]
    size: int
    updated: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "digest": self.digest, "tags": list(self.tags),
                "bytes": self.size, "updated": self.updated.isoformat() if self.updated else None}


@dataclass
class PurgeResult:
    registry: str
    dry_run: bool
    candidates: list[Candidate] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # reason -> manifests
    deleted: list[Candidate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        chosen = self.candidates if self.dry_run else self.deleted
        return {"registry": self.registry, "dryRun": self.dry_run,
                "images": [c.to_dict() for c in chosen], "count": len(chosen),
                "bytes": sum(c.size for c in chosen), "kept": self.kept,
                "problems": self.problems}


def _failure(doing: str, exc: Exception) -> str:
    """Why a registry call failed, as a problem: what was being done, the error's type,
    status and code (as the backup checks name an unreadable resource) and its message."""
    head = error_summary(exc, with_message=False)
    message = error_summary(exc)[len(head):].removeprefix(": ")
    return f"{doing}: could not be read ({head})" + (f": {message}" if message else "")


def _in_use(svc: RecoveryServices, rule: RegistryRule) -> dict[str, str | None]:
    """repo:ref -> the digest it resolves to now (None: it does not resolve)."""
    out: dict[str, str | None] = {}
    for ref in rule.in_use:
        repo, _sep, tag = ref.partition("@") if "@" in ref else ref.rpartition(":")
        out[ref] = svc.registry.resolve(rule.login_server, repo, tag)
    return out


def select(rule: RegistryRule, repository: str, manifests: list[Manifest],
           protected_digests: set[str], *, now: datetime) -> tuple[list[Candidate],
                                                                   dict[str, int]]:
    kept: dict[str, int] = {}

    def keep(reason: str) -> None:
        kept[reason] = kept.get(reason, 0) + 1

    patterns = [re.compile(p) for p in rule.protect]
    cutoff = now - timedelta(days=rule.older_than_days)
    ordered = sorted(manifests, key=lambda m: m.updated or datetime.min.replace(tzinfo=UTC),
                     reverse=True)
    chosen: list[Candidate] = []
    for index, m in enumerate(ordered):
        if index < rule.keep_last:
            keep("newest")
        elif m.digest in protected_digests:
            keep("in-use")
        elif not (m.can_delete and m.can_write):
            keep("locked")
        elif any(p.search(tag) for p in patterns for tag in m.tags):
            keep("protected-tag")
        elif m.updated is not None and m.updated > cutoff:
            keep("recent")
        else:
            chosen.append(Candidate(repository, m.digest, m.tags, m.size, m.updated))
    return chosen, kept


def purge(svc: RecoveryServices, rule: RegistryRule, *, dry_run: bool, actor: str,
          now: datetime | None = None) -> PurgeResult:
    now = now or datetime.now(UTC)
    result = PurgeResult(rule.login_server, dry_run or svc.plan_only)
    try:
        before = _in_use(svc, rule)
    except Exception as exc:  # nothing is deleted without knowing what is in use
        result.problems.append(_failure("resolving the in-use images", exc))
        return result
    protected = {d for d in before.values() if d}
    for ref, digest in before.items():
        if digest is None:
            result.problems.append(f"in-use image {ref} does not resolve in the registry")
    for repository in rule.repositories:
        try:
            manifests = svc.registry.manifests(rule.login_server, repository)
        except Exception as exc:  # the other repositories are still purged
            result.problems.append(_failure(f"listing {repository}", exc))
            continue
        chosen, kept = select(rule, repository, manifests, protected, now=now)
        result.candidates += chosen
        for reason, n in kept.items():
            result.kept[reason] = result.kept.get(reason, 0) + n
    result.candidates = result.candidates[:rule.max_deletes]
    if result.dry_run:
        return result
    for candidate in result.candidates:
        try:
            svc.registry.delete(rule.login_server, candidate.repository, candidate.digest)
        except Exception as exc:
            status = getattr(exc, "status_code", "")
            result.problems.append(f"delete {candidate.repository}@{candidate.digest[:19]} "
                                   f"failed ({type(exc).__name__} {status})".strip())
            continue
        result.deleted.append(candidate)
    try:
        after = _in_use(svc, rule)
    except Exception as exc:
        result.problems.append(_failure("checking the in-use images after the purge", exc))
        return result
    for ref, digest in before.items():
        if digest and after.get(ref) != digest:
            result.problems.append(f"in-use image {ref} no longer resolves to {digest[:19]}")
    return result


def run_purge(svc: RecoveryServices, *, dry_run: bool, actor: str,
              registry: str | None = None) -> list[PurgeResult]:
    """Purge (or plan) every registry the policy names; a real run is recorded, audited and
    checked: one grouped alert for the registries whose run failed."""
    results: list[PurgeResult] = []
    check = CheckResult("image-purge", "Image purge")
    for rule in svc.policy.images.registries:
        if registry and rule.login_server != registry:
            continue
        try:
            result = purge(svc, rule, dry_run=dry_run, actor=actor)
        except Exception as exc:  # one registry's failure never stops the others
            result = PurgeResult(rule.login_server, dry_run or svc.plan_only)
            result.problems.append(_failure("the purge", exc))
        if result.problems:
            log.warning("image purge of %s: %s", rule.login_server, "; ".join(result.problems))
        results.append(result)
        check.results.append(ResourceResult(f"registry/{rule.login_server}", result.problems,
                                            {"count": len(result.deleted), "bytes": sum(
                                                c.size for c in result.deleted)}))
        body = result.to_dict()
        svc.audit.append(AuditRecord(
            actor=actor, action="recovery.images.purge", target=f"registry/{rule.login_server}",
            # failed when a registry had problems, a dry run too; a clean dry run is planned
            outcome="failed" if result.problems else ("planned" if result.dry_run
                                                      else "succeeded"),
            correlation_id=f"{rule.login_server}:{check.checked_at:%Y%m%dT%H%M%S}",
            details={"count": body["count"], "bytes": body["bytes"], "kept": result.kept,
                     "digests": [c.digest for c in (result.candidates if result.dry_run
                                                    else result.deleted)][:50],
                     "problems": result.problems[:20]}))
        if not result.dry_run:
            svc.state.create_run(RunRecord(
                KIND, f"{rule.login_server}-{check.checked_at:%Y%m%dT%H%M%S%f}", "done",
                "failed" if result.problems else "succeeded",
                {k: v for k, v in body.items() if k != "images"}))
    if registry and not results:
        raise InvalidInput("registry", f"{registry[:100]!r} is not a registry in the policy")
    if not dry_run and not svc.plan_only and check.results:
        report(svc, check)
    return results
