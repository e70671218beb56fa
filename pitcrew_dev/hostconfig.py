"""host.json, local.settings.json and app-setting resolution, the way the Functions host reads them.

Kept apart from the server so the rules (TimeSpan format, `%SETTING%` names, defaults) are
testable and shared by the HTTP side and the background workers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any


class HostConfigError(ValueError):
    """host.json, local.settings.json or an app setting the bindings need is missing or wrong."""


# "[d.]hh:mm:ss[.fffffff]" - the .NET TimeSpan format host.json uses.
_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")
_SETTING_REF = re.compile(r"%([^%]+)%")


def parse_timespan(text: str, *, field: str) -> timedelta:
    """Parse a .NET TimeSpan ("00:00:30", "1.00:00:00", "00:00:00.500") naming `field` on error."""
    match = _TIMESPAN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise HostConfigError(
            f"{field}: {text!r} is not a TimeSpan; expected [d.]hh:mm:ss[.fff], e.g. '00:00:30'"
        )
    return timedelta(
        days=int(match["d"] or 0),
        hours=int(match["h"]),
        minutes=int(match["m"]),
        seconds=float(match["s"]),
    )


def resolve_setting_refs(value: str, settings: Mapping[str, str], *, field: str) -> str:
    """Replace every `%NAME%` in a binding property with the app setting NAME.

    The real host refuses to index a function whose binding names a missing setting; we fail
    the same way, naming both the binding property and the setting.
    """

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings or settings[name] == "":
            raise HostConfigError(
                f"{field} refers to app setting %{name}% but {name} is not set "
                "(add it to local.settings.json Values or the environment)"
            )
        return settings[name]

    return _SETTING_REF.sub(lookup, value)


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the host's documented defaults."""

    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)
    max_polling_interval: timedelta = timedelta(minutes=1)
    batch_size: int = 16
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json the local host honours."""

    route_prefix: str = "api"
    queues: QueueOptions = QueueOptions()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> HostConfig:
        extensions = raw.get("extensions") or {}
        http = extensions.get("http") or {}
        prefix = http.get("routePrefix", "api")
        if not isinstance(prefix, str):
            raise HostConfigError("extensions.http.routePrefix must be a string")
        return cls(route_prefix=prefix.strip("/"), queues=_queue_options(extensions.get("queues")))

    @classmethod
    def load(cls, path: Path) -> HostConfig:
        """Read host.json; a missing file means the host defaults."""
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise HostConfigError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise HostConfigError(f"{path}: must contain a JSON object")
        return cls.from_dict(raw)


def _queue_options(raw: Any) -> QueueOptions:
    if not raw:
        return QueueOptions()
    if not isinstance(raw, Mapping):
        raise HostConfigError("extensions.queues must be an object")
    defaults = QueueOptions()
    options = QueueOptions(
        max_dequeue_count=int(raw.get("maxDequeueCount", defaults.max_dequeue_count)),
        visibility_timeout=(
            parse_timespan(raw["visibilityTimeout"], field="extensions.queues.visibilityTimeout")
            if "visibilityTimeout" in raw
            else defaults.visibility_timeout
        ),
        max_polling_interval=(
            parse_timespan(raw["maxPollingInterval"], field="extensions.queues.maxPollingInterval")
            if "maxPollingInterval" in raw
            else defaults.max_polling_interval
        ),
        batch_size=int(raw.get("batchSize", defaults.batch_size)),
        message_encoding=str(raw.get("messageEncoding", defaults.message_encoding)).lower(),
    )
    if options.max_dequeue_count < 1:
        raise HostConfigError("extensions.queues.maxDequeueCount must be at least 1")
    if not 1 <= options.batch_size <= 32:
        raise HostConfigError("extensions.queues.batchSize must be between 1 and 32")
    if options.message_encoding not in ("base64", "none"):
        raise HostConfigError("extensions.queues.messageEncoding must be 'base64' or 'none'")
    return options


def load_local_settings(path: Path, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy local.settings.json `Values` into the environment, like Core Tools.

    A variable already in the environment wins (so a shell export overrides the file).
    Returns the names that were set, for the start-up banner.
    """
    target = os.environ if environ is None else environ
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HostConfigError(f"{path}: not valid JSON ({exc})") from exc
    values = raw.get("Values") if isinstance(raw, dict) else None
    if values is None:
        return []
    if not isinstance(values, dict):
        raise HostConfigError(f"{path}: Values must be an object of strings")
    applied = []
    for name, value in values.items():
        if name in target:
            continue
        if not isinstance(value, str | int | float | bool):
            raise HostConfigError(f"{path}: Values.{name} must be a string")
        target[name] = str(value)
        applied.append(name)
    return applied
