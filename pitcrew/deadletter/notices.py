"""The one actionable notification a new group, or a group crossing a threshold, sends."""

from __future__ import annotations

import logging

from pitcrew.deadletter.model import Group
from pitcrew.deadletter.policy import DeadletterPolicy
from pitcrew.deadletter.ports import DeadletterServices
from pitcrew.links import public_url, safe_link
from pitcrew.notify.model import Action, Notification, notice

log = logging.getLogger(__name__)


def resolve_group(dl: DeadletterServices, group_id: str, why: str) -> None:
    """The group's alert resolves once no failed message is left in it (replayed, archived or
    purged): its receivers are told, once. A failure here is logged, never raised: the
    operation that emptied the group succeeded."""
    try:
        if next(dl.store.in_group(group_id, status="failed"), None) is not None:
            return
        dl.router.resolve(f"deadletter:{group_id}",
                          summary=f"Dead-letter group {group_id} has no failed message left: "
                                  f"{why}.")
    except Exception:
        log.exception("dead-letter group %s: could not resolve its alert", group_id)


def group_link(group_id: str, policy: DeadletterPolicy) -> str | None:
    """The group's operator route (Entra sign-in, role Reader; no function key) as an absolute
    link: from PITCREW_PUBLIC_BASE_URL, else the policy's https `console_url`; else no link."""
    path = f"api/dlq/groups/{group_id}"
    link = public_url(path)
    if link is None and policy.console_url:
        link = safe_link(f"{str(policy.console_url).rstrip('/')}/{path}")
    return link


def group_notification(group: Group, level: int, policy: DeadletterPolicy) -> Notification:
    """`level` 1 is "a new group"; higher levels are the thresholds from policy."""
    crossed = level > 1 or (level == 1 and 1 in policy.thresholds)
    top = bool(policy.thresholds) and level >= policy.thresholds[-1]
    what = (f"{group.count} dead-lettered message(s) passed {level}" if crossed
            else f"new dead-letter group: {group.count} message(s)")
    title = f"{what} at {group.entity}: {group.reason}"
    summary = (
        f"Messages at {group.entity} (source {group.source}) are failing with the same cause: "
        f"{group.cause}. {group.count} message(s) so far, first seen "
        f"{group.first_seen:%Y-%m-%d %H:%M UTC}, last seen {group.last_seen:%Y-%m-%d %H:%M UTC}. "
        "They are kept in pitcrew's failed-message store, nothing is lost: inspect a sample, fix "
        "the consumer (or the message), then replay the group at a safe rate."
    )
    actions = [
        Action(label="Inspect the group", command=f"pitcrew dlq show {group.id}"),
        Action(label="Replay the group once the cause is fixed",
               command=f"pitcrew dlq replay --group {group.id} --rate "
                       f"{policy.replay.default_rate:g} --dry-run"),
    ]
    link = group_link(group.id, policy)
    if link is not None:  # never a relative link: nobody can open one from a chat message
        actions.insert(0, Action(label="Open the group", url=link))
    return notice(
        "deadletter", "deadletter-group", "critical" if top else "warning",
        id=f"deadletter:{group.id}:{level}",
        dedup_key=f"deadletter:{group.id}",
        title=title,
        summary=summary,
        correlation_id=group.id,
        facts={
            "Entity": group.entity, "Source": group.source, "Cause": group.cause,
            "Count": str(group.count), "Group": group.id,
            "First seen": group.first_seen.isoformat(), "Last seen": group.last_seen.isoformat(),
        },
        actions=actions,
        labels={"entity": group.entity, "source": group.source, "deadletterGroup": group.id},
    )
