"""Hygiene: superseded secret versions still enabled long after a rotation are disabled (plan
first), and secrets without a content type or an owner tag are reported.

Only secrets that rotate (a rotation rule owns them, or pitcrew promoted their latest version)
have their versions listed: that is where old, still-readable copies pile up, and it keeps the
sweep to one listing call per vault for everything else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

from pitcrew.audit import AuditRecord
from pitcrew.bootstrap import Services
from pitcrew.housekeeping.policy import HygienePolicy
from pitcrew.housekeeping.ports import ObjectProperties
from pitcrew.rotation.ports import SecretStore, SecretVersion


def tag_problems(props: ObjectProperties, policy: HygienePolicy) -> list[str]:
    problems = []
    if policy.require_content_type and not props.content_type:
        problems.append("no content type")
    if policy.owner_tag and not props.tags.get(policy.owner_tag):
        problems.append(f"no {policy.owner_tag} tag")
    return problems


def stale_versions(versions: list[SecretVersion], *, now: datetime,
                   retention: timedelta) -> list[SecretVersion]:
    """Enabled versions superseded (a newer version exists) for longer than `retention`."""
    dated = [(v.created_on, v) for v in versions if v.created_on is not None]
    dated.sort(key=lambda pair: pair[0])
    stale = []
    for (_, older), (superseded_at, _) in pairwise(dated):
        if older.enabled and now - superseded_at > retention:
            stale.append(older)
    return stale


def disable_stale(services: Services, store: SecretStore, vault: str, name: str, *,
                  now: datetime, policy: HygienePolicy, apply: bool, actor: str,
                  correlation_id: str) -> tuple[list[str], str]:
    """(problems left, what was done) for one secret's old enabled versions."""
    if policy.disable_old_versions == "off":
        return [], ""
    stale = stale_versions(store.versions(vault, name), now=now,
                           retention=timedelta(days=policy.retention_days))
    if not stale:
        return [], ""
    ids = [v.version for v in stale]
    if not apply:
        return [f"{len(ids)} superseded version(s) older than {policy.retention_days:g} days "
                f"still enabled: {', '.join(ids[:5])}{' …' if len(ids) > 5 else ''} (plan: "
                "`pitcrew expiry sweep --fix` or hygiene.disable_old_versions: act disables "
                "them)"], ""
    for version in ids:
        store.disable(vault, name, version)  # idempotent
    services.audit.append(AuditRecord(
        actor=actor, action="secret.versions_disabled", target=f"{vault}/secrets/{name}",
        outcome="succeeded", correlation_id=correlation_id,
        details={"versions": ids, "retentionDays": policy.retention_days}))
    return [], f"disabled {len(ids)} superseded version(s)"
