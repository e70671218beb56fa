"""Index a v2 `func.FunctionApp` into plain descriptions the local host serves.

This reads the same decorator metadata Core Tools reads (`app.get_functions()`), so what runs
locally is exactly what is registered: nothing is configured twice.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

HTTP = "httpTrigger"
EVENT_GRID = "eventGridTrigger"
TIMER = "timerTrigger"
QUEUE = "queueTrigger"
SERVICE_BUS = "serviceBusTrigger"

# Bindings the local host passes to a function besides its trigger. Anything else makes the
# function unavailable locally, with the reason printed, rather than failing at invocation.
_IGNORED_OUTPUT_TYPES = {"http"}  # the HTTP `$return` binding is the response itself


def _plain(value: Any) -> Any:
    """Binding dicts hold enums (AuthLevel.FUNCTION, HttpMethod.POST); reduce them to strings."""
    if isinstance(value, enum.Enum):
        return value.value if not isinstance(value.value, int) else value.name.lower()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class RouteTemplate:
    """An ASP.NET-style route template ("items/{id:int}/{*rest}") compiled to a regex."""

    template: str
    pattern: re.Pattern[str]
    literal_segments: int

    _CONSTRAINTS = {
        "int": r"-?\d+",
        "long": r"-?\d+",
        "alpha": r"[A-Za-z]+",
        "bool": r"(?i:true|false)",
        "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    }

    @classmethod
    def compile(cls, template: str) -> RouteTemplate:
        parts: list[str] = []
        literals = 0
        for segment in [s for s in template.strip("/").split("/") if s != ""]:
            regex, is_literal, optional = cls._segment(segment, template)
            literals += is_literal
            # Optional parameters may be left out together with their slash.
            parts.append(f"(?:/{regex})?" if optional else f"/{regex}")
        pattern = re.compile("^" + "".join(parts) + "/?$", re.IGNORECASE)
        return cls(template=template, pattern=pattern, literal_segments=literals)

    @classmethod
    def _segment(cls, segment: str, template: str) -> tuple[str, bool, bool]:
        match = re.fullmatch(r"\{(\*{1,2})?([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?(\?)?\}", segment)
        if match is None:
            if "{" in segment or "}" in segment:
                raise ValueError(
                    f"route {template!r}: segment {segment!r} mixes text and parameters, "
                    "which the local host does not support"
                )
            return re.escape(segment), True, False
        catch_all, name, constraint, optional = match.groups()
        if catch_all:
            return f"(?P<{name}>.*)", False, True
        if constraint is not None and constraint not in cls._CONSTRAINTS:
            raise ValueError(f"route {template!r}: unsupported constraint {constraint!r}")
        body = cls._CONSTRAINTS.get(constraint or "", r"[^/]+")
        return f"(?P<{name}>{body})", False, bool(optional)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path if path.startswith("/") else "/" + path)
        if found is None:
            return None
        return {k: v for k, v in found.groupdict().items() if v is not None}


@dataclass(frozen=True)
class FunctionSpec:
    """One registered function: its trigger, the binding metadata, and the callable."""

    name: str
    trigger_type: str
    trigger: Mapping[str, Any]
    bindings: tuple[Mapping[str, Any], ...]
    user_function: Callable[..., Any]
    unavailable_reason: str | None = None
    route: RouteTemplate | None = field(default=None, compare=False)

    @property
    def trigger_arg(self) -> str:
        return str(self.trigger["name"])

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    @property
    def auth_level(self) -> str:
        # The v2 FunctionApp default is FUNCTION; the decorator always fills it in.
        return str(self.trigger.get("authLevel") or "function").lower()

    @property
    def methods(self) -> tuple[str, ...] | None:
        """Allowed HTTP methods, upper case; None means every method (no `methods` given)."""
        methods = self.trigger.get("methods")
        return tuple(str(m).upper() for m in methods) if methods else None

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for the status endpoint and `pitcrew send`."""
        out: dict[str, Any] = {
            "name": self.name,
            "trigger": self.trigger_type,
            "available": self.available,
        }
        if self.unavailable_reason:
            out["unavailableReason"] = self.unavailable_reason
        if self.trigger_type == HTTP:
            out.update(
                route=self.route.template if self.route else None,
                methods=list(self.methods) if self.methods else None,
                authLevel=self.auth_level,
            )
        elif self.trigger_type == TIMER:
            out.update(
                schedule=self.trigger.get("schedule"),
                runOnStartup=bool(self.trigger.get("runOnStartup")),
            )
        elif self.trigger_type in (QUEUE, SERVICE_BUS):
            out.update(
                queueName=self.trigger.get("queueName"),
                topicName=self.trigger.get("topicName"),
                connection=self.trigger.get("connection"),
            )
        return out


def index_functions(function_app: Any) -> list[FunctionSpec]:
    """Describe every function `function_app` registers; fail naming the bad one on bad metadata."""
    specs = []
    names: set[str] = set()
    # azure-functions remembers the names it saw in `functions_bindings`, so a second
    # get_functions() on the same app (a test that indexed it, a second host) would report
    # every function as a duplicate. The attribute exists only for that check: reset it.
    if getattr(function_app, "functions_bindings", None):
        function_app.functions_bindings = None
    for fn in function_app.get_functions():
        spec = _describe(fn)
        if spec.name.lower() in names:
            raise ValueError(f"two functions are named {spec.name!r} (names are case-insensitive)")
        names.add(spec.name.lower())
        specs.append(spec)
    return specs


def _describe(fn: Any) -> FunctionSpec:
    name = fn.get_function_name()
    trigger = _plain(fn.get_trigger().get_dict_repr())
    bindings = tuple(_plain(b.get_dict_repr()) for b in fn.get_bindings())
    trigger_type = str(trigger["type"])
    reason = _unavailable_reason(trigger_type, trigger, bindings)
    route = None
    if trigger_type == HTTP:
        try:
            route = RouteTemplate.compile(str(trigger.get("route") or name))
        except ValueError as exc:
            reason = str(exc)
    return FunctionSpec(
        name=name,
        trigger_type=trigger_type,
        trigger=trigger,
        bindings=bindings,
        user_function=fn.get_user_function(),
        unavailable_reason=reason,
        route=route,
    )


def _unavailable_reason(
    trigger_type: str, trigger: Mapping[str, Any], bindings: tuple[Mapping[str, Any], ...]
) -> str | None:
    if trigger_type == SERVICE_BUS:
        return "Service Bus triggers need a real namespace (there is no local emulator)"
    if trigger_type not in (HTTP, EVENT_GRID, TIMER, QUEUE):
        return f"{trigger_type} triggers are not available locally"
    extra = [
        f"{b.get('name')} ({b.get('type')})"
        for b in bindings
        if b is not trigger
        and b.get("name") != trigger.get("name")
        and b.get("type") not in _IGNORED_OUTPUT_TYPES
    ]
    if extra:
        return "bindings not supported by the local host: " + ", ".join(extra)
    return None
