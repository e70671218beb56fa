"""`pitcrew send FILE`: post a sample payload to the local host as its real sender would.

- Event Grid schema (an array, or one event object) goes to the Event Grid webhook with the
  headers Event Grid sets (`aeg-event-type`, `aeg-subscription-name`, `aeg-delivery-count`...);
  a `Microsoft.EventGrid.SubscriptionValidationEvent` is sent as `SubscriptionValidation`.
- CloudEvents 1.0 (has `specversion`) goes to the same webhook as
  `application/cloudevents+json`, or `application/cloudevents-batch+json` for an array.
- An Azure Monitor Common Alert Schema body goes to the HTTP route `alerts`, as an action
  group's webhook would post it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
COMMON_ALERT_SCHEMA = "azureMonitorCommonAlertSchema"
# Which Event Grid function takes which event types when --function is not given.
DEFAULT_FUNCTIONS = (
    ("Microsoft.KeyVault.", "on_keyvault_event"),
    ("Microsoft.ServiceBus.", "on_servicebus_deadletter"),
)
ALERTS_ROUTE = "alerts"
SUBSCRIPTION_NAME = "PITCREW-LOCAL"


class SendError(RuntimeError):
    """The sample cannot be sent: unreadable file, unknown shape, no such function, no host."""


class HostUnreachable(SendError):
    """The host did not answer: nothing listens, it timed out, or it went away mid-request."""


def _request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; a transport failure becomes HostUnreachable naming the URL and what failed."""
    from pitcrew.cli.client import describe_http_error

    try:
        return client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        what = describe_http_error(exc, client.timeout.read)
        raise HostUnreachable(f"{method} {url} failed: {what}") from None
    except httpx.InvalidURL as exc:
        raise SendError(f"{url} is not a usable URL: {exc}") from None


def send_sample(
    path: Path | str,
    *,
    base_url: str = "http://127.0.0.1:7071",
    function: str | None = None,
    function_key: str | None = None,
    timeout: float = 30.0,
) -> httpx.Response:
    """Post the sample at `path` to the host at `base_url`; return the host's response as is.

    `function_key` defaults to PITCREW_FUNCTION_KEY. Raises SendError when the file is not a
    recognised payload, the host does not answer, or the target function is not in the app.
    """
    payload = _load(Path(path))
    key = function_key or os.environ.get("PITCREW_FUNCTION_KEY") or None
    base = base_url.rstrip("/")
    with httpx.Client(timeout=timeout) as client:
        functions = _host_functions(client, base)
        if isinstance(payload, dict) and payload.get("schemaId") == COMMON_ALERT_SCHEMA:
            url = _http_function_url(functions, function, base)
            return _request(
                client,
                "POST",
                url,
                content=json.dumps(payload),
                headers=_key_header(
                    key,
                    {
                        "content-type": "application/json",
                    },
                ),
            )
        return _send_event_grid(client, base, functions, payload, function, key)


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SendError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SendError(f"{path} is not valid JSON: {exc}") from exc


def _key_header(key: str | None, headers: dict[str, str]) -> dict[str, str]:
    if key:
        headers["x-functions-key"] = key
    return headers


def _host_functions(client: httpx.Client, base: str) -> list[dict[str, Any]]:
    response = _request(client, "GET", f"{base}/admin/host/status")
    if response.status_code != 200:
        raise SendError(
            f"{base}/admin/host/status answered {response.status_code}; "
            "is this a pitcrew local host?"
        )
    try:
        functions = response.json().get("functions")
    except (ValueError, AttributeError):
        functions = None
    if not isinstance(functions, list):
        raise SendError(f"{base}/admin/host/status did not list functions")
    return functions


def _http_function_url(functions: list[dict[str, Any]], function: str | None, base: str) -> str:
    """The URL of `function`, or of the function whose route is `alerts`."""
    http = [f for f in functions if f.get("trigger") == "httpTrigger"]
    if function is not None:
        match = next((f for f in http if f["name"].lower() == function.lower()), None)
    else:
        match = next((f for f in http if str(f.get("route", "")).strip("/") == ALERTS_ROUTE), None)
    if match is None or not match.get("url"):
        wanted = repr(function) if function else f"with route '{ALERTS_ROUTE}'"
        names = ", ".join(f["name"] for f in http) or "none"
        raise SendError(f"the app has no HTTP function {wanted} (HTTP functions: {names})")
    return str(match["url"])


def _events_of(payload: Any) -> tuple[list[dict[str, Any]], bool]:
    """The events and whether they are CloudEvents; SendError for anything else."""
    events = payload if isinstance(payload, list) else [payload]
    if not events or not all(isinstance(e, dict) for e in events):
        raise SendError(
            "the sample is neither an Event Grid / CloudEvents event (or array of "
            "them) nor a Common Alert Schema body"
        )
    cloud = ["specversion" in e for e in events]
    if any(cloud) and not all(cloud):
        raise SendError("the sample mixes CloudEvents and Event Grid schema events")
    type_field = "type" if cloud[0] else "eventType"
    if not all(isinstance(e.get(type_field), str) for e in events):
        raise SendError(f"every event needs a string '{type_field}'")
    return events, cloud[0]


def _choose_function(
    event_type: str, function: str | None, grid_functions: list[str], validation: bool
) -> str:
    if function is not None:
        chosen = next((n for n in grid_functions if n.lower() == function.lower()), None)
        if chosen is None:
            raise SendError(
                f"the app has no Event Grid function {function!r} "
                f"(Event Grid functions: {', '.join(grid_functions) or 'none'})"
            )
        return chosen
    default = next(
        (name for prefix, name in DEFAULT_FUNCTIONS if event_type.startswith(prefix)), None
    )
    if default is None and validation and grid_functions:
        default = grid_functions[0]  # validation never reaches the function; any will do
    if default is None:
        raise SendError(f"no default function for event type {event_type!r}; pass --function")
    if default not in grid_functions:
        raise SendError(
            f"the app has no Event Grid function {default!r} for {event_type!r} "
            f"(Event Grid functions: {', '.join(grid_functions) or 'none'}); "
            "pass --function"
        )
    return default


def _send_event_grid(
    client: httpx.Client,
    base: str,
    functions: list[dict[str, Any]],
    payload: Any,
    function: str | None,
    key: str | None,
) -> httpx.Response:
    events, cloud = _events_of(payload)
    event_type = str(events[0]["type" if cloud else "eventType"])
    validation = event_type == VALIDATION_EVENT_TYPE
    grid_functions = [f["name"] for f in functions if f.get("trigger") == "eventGridTrigger"]
    target = _choose_function(event_type, function, grid_functions, validation)
    if cloud:
        content_type = (
            "application/cloudevents-batch+json"
            if isinstance(payload, list)
            else "application/cloudevents+json"
        )
        body: Any = payload
    else:
        content_type = "application/json"
        body = events  # Event Grid always delivers its own schema as an array
    headers = _key_header(
        key,
        {
            "content-type": content_type,
            "aeg-event-type": "SubscriptionValidation" if validation else "Notification",
            "aeg-subscription-name": SUBSCRIPTION_NAME,
            "aeg-delivery-count": "0",
            "aeg-data-version": str(events[0].get("dataVersion", "")) if not cloud else "",
            "aeg-metadata-version": "1",
        },
    )
    return _request(
        client,
        "POST",
        f"{base}/runtime/webhooks/eventgrid",
        params={"functionName": target},
        content=json.dumps(body),
        headers=headers,
    )
