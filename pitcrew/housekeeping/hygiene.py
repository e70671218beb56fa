"""Hygiene: superseded secret versions still enabled long after a rotation are disabled (plan
first), and secrets without a content type or an owner tag are reported.

Only secrets that rotate (a rotation rule owns them, or pitcrew promoted their latest version)
have their versions listed: that is where old, still-readable copies pile up, and it keeps the
sweep to one listing call per vault for everything else.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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


def stale_versions(versions: list[SecretVersion], *, now: datetime, retention: timedelta,
                   current: str | None = None) -> list[SecretVersion]:
    """Enabled versions superseded (a newer version exists) for longer than `retention`.
    Key Vault lists versions in no set order and dates them to the second, so the order of
    `versions` decides nothing: a version is superseded from the first creation time after its
    own. Versions created in the same second as the newest are superseded only when `current`
    (the id Key Vault answers for the secret) names another of them; without it, none is."""
    times = sorted({v.created_on for v in versions if v.created_on is not None})
    stale = []
    for version in versions:
        if version.created_on is None or not version.enabled:
            continue
        superseded_at = next((t for t in times if t > version.created_on), None)
        if superseded_at is None and current is not None and version.version != current:
            superseded_at = version.created_on  # the newest second, and not the current one
        if superseded_at is not None and now - superseded_at > retention:
            stale.append(version)
    return stale


def _newest_second_is_shared(versions: list[SecretVersion]) -> bool:
    dated = [v.created_on for v in versions if v.created_on is not None]
    return bool(dated) and dated.count(max(dated)) > 1


def disable_stale(services: Services, store: SecretStore, vault: str, name: str, *,
                  now: datetime, policy: HygienePolicy, apply: bool, actor: str,
                  correlation_id: str) -> tuple[list[str], str]:
    """(problems left, what was done) for one secret's old enabled versions."""
    if policy.disable_old_versions == "off":
        return [], ""
    versions = store.versions(vault, name)
    current = None
    if _newest_second_is_shared(versions):
        # Which of the same-second versions is current only Key Vault can say.
        latest = store.latest(vault, name)
        current = latest.version if latest is not None else None
    stale = stale_versions(versions, now=now, retention=timedelta(days=policy.retention_days),
                           current=current)
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
