"""Routes a notification to the channels the policy names, through the outbox."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pitcrew.notify.channels import Channel
from pitcrew.notify.model import Notification
from pitcrew.notify.outbox import Outbox
from pitcrew.policy import Policy

log = logging.getLogger(__name__)

DispatchOutcome = Literal["delivered", "queued", "already-delivered", "no-channel"]


@dataclass
class Dispatch:
    """Where one notification went, per channel: delivered now, queued in the outbox for the
    retry timer (the attempt failed, or another run holds it), or delivered by an earlier run.
    No channel at all is a failure: `reason` says why."""

    delivered: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def outcome(self) -> DispatchOutcome:
        """What happened, in one word, for the audit record: never more than did happen."""
        if not (self.delivered or self.queued or self.already):
            return "no-channel"
        if self.queued:
            return "queued"
        if self.delivered:
            return "delivered"
        return "already-delivered"

    @property
    def detail(self) -> str:
        """The outcome in a phrase, for a handler's answer."""
        return {
            "delivered": "notification delivered",
            "queued": "notification queued for retry",
            "already-delivered": "notification was delivered before",
            "no-channel": f"notification matched no channel: {self.reason}",
        }[self.outcome]

    def to_dict(self) -> dict[str, list[str] | str]:
        out: dict[str, list[str] | str] = {
            "delivered": self.delivered, "queued": self.queued, "already": self.already,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


class Router:
    def __init__(self, policy: Policy, channels: Mapping[str, Channel], outbox: Outbox) -> None:
        self._policy = policy
        self._channels = channels
        self._outbox = outbox

    def channels_for(self, notification: Notification) -> list[str]:
        chosen: list[str] = []
        for route in self._policy.routes:
            kinds, severities = route.match.kinds, route.match.severities
            if kinds is not None and notification.kind not in kinds:
                continue
            if severities is not None and notification.severity not in severities:
                continue
            chosen += [c for c in route.channels if c not in chosen]
            if not route.continue_matching:
                break
        return chosen

    def send(self, notification: Notification) -> Dispatch:
        """Write to the outbox for each channel, then try each delivery once right away. A
        failed attempt stays in the outbox for the retry timer: nothing is lost. A row an
        earlier, interrupted run recorded is delivered now unless another run holds it."""
        dispatch = Dispatch()
        names = self.channels_for(notification)
        if not names:
            dispatch.reason = (
                f"no route in the policy takes kind {notification.kind!r} "
                f"with severity {notification.severity!r}"
            )
            log.error(
                "notification %r is not sent anywhere: %s", notification.id, dispatch.reason
            )
            return dispatch
        for name in names:
            entry = self._outbox.enqueue(name, notification)
            channel = self._channels.get(name)
            if entry.created:
                result = self._outbox.attempt(entry, channel, leased=True)
            else:
                result = self._outbox.attempt_existing(entry, channel)
            if result == "delivered":
                dispatch.delivered.append(name)
            elif result == "already":
                dispatch.already.append(name)
            else:
                dispatch.queued.append(name)
        return dispatch
