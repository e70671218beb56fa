"""Inhibition: while an alert matching a rule's source matchers fires, alerts matching its
target matchers that carry the same values for the rule's `equal` labels are not notified.
An alert never inhibits itself (a rule whose source and target both match one alert does not
mute it)."""

from __future__ import annotations

from dataclasses import dataclass

from pitcrew.alerting.policy import InhibitRule, Matcher, matchers_of


@dataclass(frozen=True)
class Rule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def of(cls, rule: InhibitRule) -> Rule:
        return cls(tuple(matchers_of(rule.source_matchers)),
                   tuple(matchers_of(rule.target_matchers)), tuple(rule.equal))


class Inhibitor:
    def __init__(self, rules: list[InhibitRule]) -> None:
        self.rules = [Rule.of(r) for r in rules]

    def inhibited_by(self, labels: dict[str, str], fingerprint: str,
                     firing: list[tuple[str, dict[str, str]]]) -> list[str]:
        """The fingerprints of the firing alerts that inhibit this one (`firing` is every
        firing alert as (fingerprint, labels))."""
        sources: list[str] = []
        for rule in self.rules:
            if not all(m.matches(labels) for m in rule.target):
                continue
            for source_fp, source in firing:
                if source_fp == fingerprint or source_fp in sources:
                    continue
                if all(m.matches(source) for m in rule.source) and all(
                    source.get(name, "") == labels.get(name, "") for name in rule.equal
                ):
                    sources.append(source_fp)
        return sources
