"""The routing tree: which receivers an alert goes to, and how it is grouped and timed there.

As in Alertmanager: an alert enters at the root (which matches everything) and descends into
the first child whose matchers all match, depth first; a child with `continue: true` lets the
next siblings be tried too. A node that matches but none of whose children does takes the
alert itself. Children inherit receiver, group_by and timings from their parent. The root
names a receiver (the policy refuses a root without one), so every alert reaches someone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pitcrew.alerting.labels import digest
from pitcrew.alerting.policy import (
    GROUP_ALL,
    Matcher,
    RouteNode,
    TimeInterval,
    matchers_of,
)

DEFAULT_GROUP_BY = ("kind", "alertRule")
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


@dataclass(frozen=True)
class Route:
    """One node of the tree with everything it inherited resolved."""

    id: str
    """Its path in the tree, e.g. `root/0/2`: part of every group key made under it."""
    name: str
    receiver: str
    matchers: tuple[Matcher, ...]
    continue_matching: bool
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    mute_time_intervals: tuple[str, ...]
    active_time_intervals: tuple[str, ...]
    children: tuple[Route, ...] = field(default=())

    @property
    def grouping_off(self) -> bool:
        return GROUP_ALL in self.group_by

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.grouping_off:
            return dict(labels)
        return {name: labels.get(name, "") for name in self.group_by}

    def group_key(self, labels: dict[str, str], fingerprint: str) -> str:
        """`{route id}:{group labels}`; with grouping off the alert's fingerprint stands in for
        its labels, so an alert is a group of its own (and its Resolved finds it)."""
        if self.grouping_off:
            return f"{self.id}:{{fingerprint={digest(fingerprint, 16)}}}"
        inside = ",".join(f'{k}="{labels.get(k, "")}"' for k in self.group_by)
        return f"{self.id}:{{{inside}}}"

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "name": self.name, "receiver": self.receiver,
            "matchers": [str(m) for m in self.matchers], "continue": self.continue_matching,
            "groupBy": list(self.group_by), "groupWait": self.group_wait,
            "groupInterval": self.group_interval, "repeatInterval": self.repeat_interval,
            "muteTimeIntervals": list(self.mute_time_intervals),
            "activeTimeIntervals": list(self.active_time_intervals),
            "routes": [c.to_dict() for c in self.children],
        }


def build_tree(root: RouteNode) -> Route:
    """The tree of a policy's `route:` (checked by the policy: the root has a receiver)."""
    return _build(root, None, "root")


def _build(node: RouteNode, parent: Route | None, path: str) -> Route:
    def timing(value: float | None, inherited: float | None, default: float) -> float:
        if value is not None:
            return float(value)
        return inherited if inherited is not None else default

    group_by: tuple[str, ...] = (
        tuple(node.group_by) if node.group_by is not None
        else parent.group_by if parent is not None else DEFAULT_GROUP_BY
    )
    route = Route(
        id=path,
        name=node.name or path,
        receiver=node.receiver or (parent.receiver if parent else ""),
        matchers=tuple(matchers_of(node.matchers)),
        continue_matching=node.continue_matching,
        group_by=group_by,
        group_wait=timing(node.group_wait, parent.group_wait if parent else None,
                          DEFAULT_GROUP_WAIT),
        group_interval=timing(node.group_interval, parent.group_interval if parent else None,
                              DEFAULT_GROUP_INTERVAL),
        repeat_interval=timing(node.repeat_interval, parent.repeat_interval if parent else None,
                               DEFAULT_REPEAT_INTERVAL),
        mute_time_intervals=tuple(node.mute_time_intervals),
        active_time_intervals=tuple(node.active_time_intervals),
    )
    children = tuple(_build(child, route, f"{path}/{i}") for i, child in enumerate(node.routes))
    object.__setattr__(route, "children", children)
    return route


def match_routes(root: Route, labels: dict[str, str]) -> list[Route]:
    """The routes that take an alert with these labels: never empty (the root takes what no
    child takes)."""
    return _match(root, labels) or [root]


def _match(route: Route, labels: dict[str, str]) -> list[Route]:
    if not route.matches(labels):
        return []
    taken: list[Route] = []
    for child in route.children:
        found = _match(child, labels)
        if found:
            taken += found
            if not child.continue_matching:
                break
    return taken or [route]


def find_route(root: Route, route_id: str) -> Route | None:
    if root.id == route_id:
        return root
    for child in root.children:
        found = find_route(child, route_id)
        if found is not None:
            return found
    return None


def time_muted(route: Route, intervals: dict[str, list[TimeInterval]],
               now: datetime) -> str | None:
    """The name of the time interval that mutes this route now, or why it is not active."""
    for name in route.mute_time_intervals:
        if any(t.contains(now) for t in intervals.get(name, [])):
            return name
    if route.active_time_intervals and not any(
        t.contains(now) for name in route.active_time_intervals for t in intervals.get(name, [])
    ):
        return "outside " + ", ".join(route.active_time_intervals)
    return None
