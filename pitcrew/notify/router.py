"""Routes a notification to the channels the policy names, through the outbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pitcrew.notify.channels import Channel
from pitcrew.notify.model import Notification
from pitcrew.notify.outbox import Outbox
from pitcrew.policy import Policy


@dataclass
class Dispatch:
    """Where one notification went: delivered now, queued for retry, or sent before."""

    delivered: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.queued:
            return "queued"
        return "succeeded"

    def to_dict(self) -> dict[str, list[str]]:
        return {"delivered": self.delivered, "queued": self.queued, "already": self.already}


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
        failed attempt stays in the outbox for the retry timer: nothing is lost."""
        dispatch = Dispatch()
        for name in self.channels_for(notification):
            entry = self._outbox.enqueue(name, notification)
            if not entry.created:
                # Recorded by an earlier, interrupted run: delivered, or the timer owns it.
                dispatch.already.append(name)
                continue
            result = self._outbox.attempt(entry, self._channels.get(name), leased=True)
            (dispatch.delivered if result == "delivered" else dispatch.queued).append(name)
        return dispatch
