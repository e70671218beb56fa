"""Routes a notification to the channels the policy names, through the outbox."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pitcrew.notify.model import Dispatch, Notification
from pitcrew.notify.outbox import Outbox
from pitcrew.policy import Policy
from pitcrew.ports import Channel

log = logging.getLogger(__name__)


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
