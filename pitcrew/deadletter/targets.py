"""Where a replay may go, decided by the policy alone.

A replay goes to the message's own entity, or to its source's `replay_to`. With
`deadletter.replay.allow_redirect` an operator may also pick one of the targets the policy lists
(`deadletter.replay.targets` and every source's `replay_to`), by its label. Nothing else: no host,
namespace or connection setting of the caller's choosing ever reaches an SDK client, so the
app's identity (and its Service Bus token) is only presented where the policy says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pitcrew.deadletter.model import Target, parse_target
from pitcrew.deadletter.policy import ServiceBusSource, StorageQueueSource
from pitcrew.deadletter.ports import DeadletterServices
from pitcrew.errors import ConfigurationError, InvalidInput

log = logging.getLogger(__name__)
MAX_TARGET_TEXT = 300


class TargetRefused(InvalidInput):
    """A target the policy does not allow: a 400 that names the ones it does."""

    def __init__(self, problem: str, allowed: Iterable[str]) -> None:
        self.allowed = sorted(set(allowed))
        listed = ", ".join(self.allowed) or "none"
        super().__init__("target", f"{problem}; allowed: {listed}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(super().to_dict())
        out["allowed"] = self.allowed
        return out


class ReplayTargets:
    """The targets the current policy allows, per source, as `Target`s with fully qualified
    Service Bus namespaces and the connection settings the policy names."""

    def __init__(self, dl: DeadletterServices) -> None:
        self._dl = dl
        self._policy = dl.policy
        self._cache: dict[str, Target | None] = {}

    # ------------------------------------------------------------------ building

    def _from_spec(self, spec: str) -> Target | None:
        """A policy-written target, its namespace completed and checked (None when the policy
        names a namespace outside the cloud's Service Bus suffix: logged, never used)."""
        if spec not in self._cache:
            parsed = parse_target(spec)
            self._cache[spec] = (self._qualified(parsed, spec) if parsed.kind == "servicebus"
                                 else parsed)
        return self._cache[spec]

    def _qualified(self, target: Target, what: str, *, from_policy: bool = True) -> Target | None:
        try:
            fqdn = self._dl.brokers.servicebus_fqdn(target.namespace)
        except ConfigurationError as exc:
            if from_policy:
                log.warning("replay target %r from the policy is not usable: %s", what[:100],
                            exc)
            return None
        return Target(target.kind, target.name, namespace=fqdn, connection=target.connection,
                      subscription=target.subscription)

    def own(self, source: str) -> list[Target]:
        """The message's own targets: its source's `replay_to` (the default when set), then the
        entity it failed on when that can be sent to."""
        try:
            config = self._policy.source(source)
        except KeyError:
            return []
        found: list[Target] = []
        if config.replay_to:
            target = self._from_spec(config.replay_to)
            if target is not None:
                found.append(target)
        entity: Target | None = None
        if isinstance(config, StorageQueueSource):
            entity = Target("queue", config.queue, connection=config.connection)
        elif isinstance(config, ServiceBusSource):
            base = (Target("servicebus", config.queue, namespace=config.namespace,
                           connection=config.connection) if config.queue else
                    Target("servicebus", f"topics/{config.topic}", namespace=config.namespace,
                           connection=config.connection, subscription=config.subscription))
            entity = self._qualified(base, config.name)
        if entity is not None:
            found.append(entity)
        return found

    def redirects(self) -> list[Target]:
        """What an operator may pick besides a message's own targets (allow_redirect only)."""
        if not self._policy.replay.allow_redirect:
            return []
        specs = list(self._policy.replay.targets)
        specs += [s.replay_to for s in self._policy.sources if s.replay_to]
        return [t for t in (self._from_spec(s) for s in specs) if t is not None]

    def allowed(self, source: str) -> dict[str, Target]:
        """label -> Target, the message's own first (a label keeps its first meaning)."""
        out: dict[str, Target] = {}
        for target in self.own(source) + self.redirects():
            out.setdefault(target.label, target)
        return out

    # ------------------------------------------------------------------ deciding

    def default(self, source: str) -> Target:
        own = self.own(source)
        if not own:
            raise TargetRefused(
                f"messages of source {source!r} have no target of their own (not in the policy, "
                "or an Event Grid source without replay_to)",
                self.allowed(source))
        return own[0]

    def resolve(self, source: str, label: str | None) -> Target:
        """The Target for a message of `source`: its default, or the chosen allowed label."""
        if label is None:
            return self.default(source)
        allowed = self.allowed(source)
        if label not in allowed:
            why = ("not one of this message's targets, and redirecting replays is off "
                   "(deadletter.replay.allow_redirect)" if not self._policy.replay.allow_redirect
                   else "not one the policy lists (deadletter.replay.targets, replay_to)")
            raise TargetRefused(f"{label[:100]!r} is {why}", allowed)
        return allowed[label]

    def label_of(self, text: str, sources: Iterable[str]) -> str:
        """An operator's target text as a label the policy may allow; refused otherwise. The
        text only selects: it never supplies a host or a connection."""
        sources = list(sources)
        allowed: set[str] = set()
        for index, source in enumerate(sources):
            labels = set(self.allowed(source))
            allowed = labels if index == 0 else allowed & labels
        text = text.strip()
        if "@" in text:
            raise TargetRefused("connection settings come from the policy, never from a "
                                "request", allowed)
        try:
            target = parse_target(text)
        except InvalidInput:
            raise TargetRefused(f"{text[:100]!r} is not a target", allowed) from None
        if target.kind == "servicebus":
            qualified = self._qualified(target, text, from_policy=False)
            if qualified is None:
                raise TargetRefused(
                    f"{text[:100]!r} names a host outside the cloud's Service Bus suffix "
                    f"({self._dl.brokers.servicebus_suffix})", allowed)
            target = qualified
        if target.label not in allowed:
            for source in sources:
                self.resolve(source, target.label)  # raises, naming what is allowed
        return target.label
