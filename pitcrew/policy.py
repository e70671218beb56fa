"""Policy as code: the schema of pitcrew.yaml, loading and validation.

The app refuses to act on an invalid policy: every problem is reported with the key it concerns
and what is wrong with it (see docs/policy.md for the reference).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pitcrew.alerting.policy import (
    AlertingSettings,
    InhibitRule,
    RouteNode,
    TimeInterval,
    translate_flat_routes,
    tree_problems,
)
from pitcrew.alerting.receivers.email import EmailConfig
from pitcrew.alerting.receivers.eventgrid import EventGridConfig
from pitcrew.alerting.receivers.pagerduty import PagerDutyConfig
from pitcrew.alerting.receivers.slack import SlackConfig
from pitcrew.alerting.receivers.teams import TeamsConfig
from pitcrew.alerting.receivers.webhook import WebhookConfig
from pitcrew.deadletter.policy import DeadletterPolicy
from pitcrew.errors import PolicyInvalid
from pitcrew.housekeeping.policy import ExpiryPolicy
from pitcrew.housekeeping.recovery_policy import RecoveryPolicy
from pitcrew.quota.policy import QuotaPolicy
from pitcrew.rotation.hooks import hook_names, import_problem
from pitcrew.rotation.policy import RotationPolicy
from pitcrew.schema import HttpsLink, StrictModel, matching

DEFAULT_POLICY_FILE = "pitcrew.yaml"
NotificationKind = Literal["expiry", "alert", "rotation", "deadletter", "quota", "pitcrew",
                           "recovery"]
Severity = Literal["critical", "warning", "info"]
_NAME = r"^[a-z][a-z0-9-]{0,62}$"
_NAMED = re.compile(_NAME)
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# The receivers' config models, one per `type` (pitcrew/alerting/receivers/<type>.py define
# theirs); the policy's `receivers:` map is their union, discriminated by `type`.
ReceiverConfig = Annotated[
    WebhookConfig | PagerDutyConfig | TeamsConfig | SlackConfig | EmailConfig | EventGridConfig,
    Field(discriminator="type"),
]
Channel = ReceiverConfig  # the earlier name
WebhookChannel = WebhookConfig  # the earlier name


class RouteMatch(StrictModel):
    kinds: list[NotificationKind] | None = Field(
        default=None, description="Notification kinds this route takes; all when omitted."
    )
    severities: list[Severity] | None = Field(
        default=None, description="Severities this route takes; all when omitted."
    )


class Route(StrictModel):
    name: str = Field(pattern=_NAME)
    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: list[str] = Field(min_length=1)
    continue_matching: bool = Field(
        default=False, alias="continue", description="Also try the routes after this one."
    )


class ExpiryNotifications(StrictModel):
    runbook_url: HttpsLink | None = None
    portal_links: bool = Field(default=True, description="Add a link to the object in the portal.")


class Notifications(StrictModel):
    expiry: ExpiryNotifications = Field(default_factory=ExpiryNotifications)


class OutboxSettings(StrictModel):
    base_delay_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_delay_seconds: float = Field(default=1800.0, gt=0, le=86400)
    escalate_after_attempts: int = Field(
        default=10,
        ge=1,
        description="Log an error (and an audit record) once a notification "
        "has failed this many times; it keeps being retried.",
    )
    lease_seconds: float = Field(default=120.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _ordered(self) -> OutboxSettings:
        if self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError("max_delay_seconds must be at least base_delay_seconds")
        return self


class Policy(StrictModel):
    """The whole of pitcrew.yaml."""

    version: Literal[1]
    mode: Literal["act", "plan"] = Field(
        default="act",
        description="'plan' decides, audits and notifies but changes nothing in the workload.",
    )
    receivers: dict[str, ReceiverConfig] = Field(
        min_length=1, description="Where notifications can go (`channels:` is the old name)."
    )
    route: RouteNode | None = Field(default=None, description="The routing tree.")
    routes: list[Route] | None = Field(
        default=None, min_length=1, description="The flat list of earlier policies; "
        "translated to a tree (give `route:` or `routes:`, not both).")
    inhibit_rules: list[InhibitRule] = Field(default_factory=list, max_length=100)
    time_intervals: dict[str, list[TimeInterval]] = Field(default_factory=dict)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    notifications: Notifications = Field(default_factory=Notifications)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    rotation: RotationPolicy = Field(default_factory=RotationPolicy)
    deadletter: DeadletterPolicy = Field(default_factory=DeadletterPolicy)
    quota: QuotaPolicy = Field(default_factory=QuotaPolicy)
    expiry: ExpiryPolicy = Field(default_factory=ExpiryPolicy)
    recovery: RecoveryPolicy = Field(default_factory=RecoveryPolicy)

    @model_validator(mode="before")
    @classmethod
    def _channels_is_receivers(cls, data: Any) -> Any:
        if isinstance(data, dict) and "channels" in data:
            if "receivers" in data:
                raise ValueError("give `receivers:` or its old name `channels:`, not both")
            data = {("receivers" if k == "channels" else k): v for k, v in data.items()}
        if isinstance(data, dict) and "route" in data and "routes" in data:
            raise ValueError("give the routing tree `route:` or the flat list `routes:`, "
                             "not both")
        if isinstance(data, dict) and "route" not in data and "routes" not in data:
            raise ValueError("route: is required: the routing tree, whose root names the "
                             "receiver that takes every alert no other route takes")
        return data

    @field_validator("receivers", "time_intervals")
    @classmethod
    def _names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        what = "receiver name " if info.field_name == "receivers" else "time interval name "
        for name in value:
            matching(name, _NAMED, " must be lower-case letters, digits and '-', starting with "
                     "a letter", shown=None, before=what)
        return value

    def looks_after_vault(self, vault: str, secret: str) -> bool:
        """Whether the policy names this vault for this secret: a rotation.secrets rule matches
        it, or the vault is one of expiry.vaults. A request naming any other vault would make
        pitcrew connect where its caller chose, so the routes refuse it before any call."""
        if self.rotation.rule_for(vault, secret) is not None:
            return True
        return vault.lower() in {name.lower() for name in self.expiry.vaults}

    @property
    def channels(self) -> dict[str, ReceiverConfig]:
        """The earlier name of `receivers`."""
        return self.receivers

    def route_tree(self) -> RouteNode:
        """The routing tree: `route:`, or the flat `routes:` translated."""
        if self.route is not None:
            return self.route
        assert self.routes is not None
        return translate_flat_routes(self.routes)

    @model_validator(mode="after")
    def _routes_name_known_channels(self) -> Policy:
        known = sorted(self.receivers)
        if self.routes is not None:
            seen: set[str] = set()
            for i, route in enumerate(self.routes):
                if route.name in seen:
                    raise ValueError(
                        f"routes[{i}].name: {route.name!r} is used by an earlier route")
                seen.add(route.name)
                for j, channel in enumerate(route.channels):
                    if channel not in self.receivers:
                        raise ValueError(
                            f"routes[{i}].channels[{j}]: unknown channel {channel!r} "
                            f"(defined: {', '.join(known)})"
                        )
        problems = tree_problems(self.route_tree(), set(self.receivers), set(self.time_intervals))
        watchdog = self.alerting.watchdog.receiver
        if watchdog is not None and watchdog not in self.receivers:
            problems.append(f"alerting.watchdog.receiver: unknown receiver {watchdog!r} "
                            f"(defined: {', '.join(known)})")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("webhook",):
            # pydantic names the union member in the path; the user never wrote it.
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        where = _location(tuple(item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a known key (check the spelling; see docs/policy.md)"
        elif item["type"] == "missing":
            message = "is required"
        if message.startswith(("routes[", "routes:", "route", "alerting.")) and not where:
            problems.extend(message.split("; "))
        else:
            problems.append(f"{where or '(top level)'}: {message}")
    return problems


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Validate YAML text; raise PolicyInvalid listing every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyInvalid(source, [f"{where}: not valid YAML ({problem})"]) from None
    if not isinstance(document, dict):
        raise PolicyInvalid(source, ["(top level): must be a mapping with 'version: 1'"])
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        problems = _problems(exc)
        if "channels" in document:  # name the key the way the file does
            problems = [f"channels{p[9:]}" if p.startswith("receivers") else p
                        for p in problems]
        raise PolicyInvalid(source, problems) from None


def load_policy(path: str | os.PathLike[str]) -> Policy:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyInvalid(str(file), ["file not found"]) from None
    except OSError as exc:
        raise PolicyInvalid(str(file), [f"cannot be read: {exc.strerror}"]) from None
    return parse_policy(text, source=str(file))


def hook_problems(policy: Policy, *, search_path: list[str] | None = None) -> list[str]:
    """What `pitcrew policy validate` checks beyond the schema: every `rotation.hook_modules`
    entry imports, and every `hook:` a rule names is registered by them. (At run time a broken
    module only fails the rules that use its hooks; here it fails validation.)"""
    added = [p for p in (search_path or []) if p not in sys.path]
    sys.path[:0] = added
    try:
        problems = [
            f"rotation.hook_modules[{i}]: cannot import {module!r} ({problem})"
            for i, module in enumerate(policy.rotation.hook_modules)
            if (problem := import_problem(module)) is not None
        ]
    finally:
        for path in added:
            sys.path.remove(path)
    known = hook_names()
    for i, rule in enumerate(policy.rotation.secrets):
        if rule.strategy == "generated" and rule.hook not in known:
            problems.append(
                f"rotation.secrets[{i}].hook: no hook named {rule.hook!r} is registered by "
                f"rotation.hook_modules (registered: {', '.join(known) or 'none'})"
            )
    return problems
