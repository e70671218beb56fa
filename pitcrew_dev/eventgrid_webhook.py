"""What the Event Grid extension does at `/runtime/webhooks/eventgrid`, minus the HTTP plumbing.

The real extension: `aeg-event-type: SubscriptionValidation` answers the validation code from
the first event's data; `Notification` takes a JSON array (or a single object) of Event Grid
schema or CloudEvents 1.0 events and invokes the function once per event; `Unsubscribe` is
acknowledged; anything else is a 400. Each event reaches the Python function through the
`azure.functions` library's own `eventGridTrigger` converter, which we call here too, so the
object a function receives locally is the one it receives in Azure:

- an Event Grid schema event becomes `func.EventGridEvent` (id, topic, subject, event_type,
  event_time, data_version, get_json() = data);
- a CloudEvents 1.0 event (it has `specversion`) becomes `func.CloudEvent` (id, source, type,
  time, subject, specversion, get_json() = data, extension_attrs) with recent azure-functions
  releases (1.26 here).
  Older libraries built an EventGridEvent with topic/event_type None for CloudEvents; functions
  should read `event_type` or `type`, whichever the object has.
"""

from __future__ import annotations

import json
from typing import Any

VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
_EVENT_GRID_REQUIRED = ("id", "eventType", "eventTime")
_CLOUDEVENT_REQUIRED = ("id", "source", "type", "specversion")


class WebhookInputError(ValueError):
    """The delivery is malformed; the message names what is wrong (answered as a 400)."""


def _load_json(body: bytes) -> Any:
    """pitcrew's one body decoder (size, nesting depth, UTF-8, JSON), as a 400 here too."""
    from pitcrew.errors import InvalidInput
    from pitcrew.events import load_json

    try:
        return load_json(body)
    except InvalidInput as exc:
        raise WebhookInputError(f"request {exc}") from None


def validation_code(body: bytes) -> str:
    """The `validationCode` of a SubscriptionValidation delivery (an Event Grid schema array)."""
    payload = _load_json(body)
    events = payload if isinstance(payload, list) else [payload]
    if not events or not isinstance(events[0], dict):
        raise WebhookInputError("SubscriptionValidation body must be an array of event objects")
    first = events[0]
    data = first.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("validationCode"), str):
        raise WebhookInputError("event[0].data.validationCode is missing or not a string")
    return data["validationCode"]


def notification_events(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """The events of a Notification delivery, each checked for its schema's required fields."""
    payload = _load_json(body)
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/cloudevents-batch+json" and not isinstance(payload, list):
        raise WebhookInputError("application/cloudevents-batch+json body must be a JSON array")
    events = payload if isinstance(payload, list) else [payload]
    if not events:
        raise WebhookInputError("the delivery holds no events (empty array)")
    for index, event in enumerate(events):
        _check_event(index, event, cloudevents=media_type.startswith("application/cloudevents"))
    return events


def _check_event(index: int, event: Any, *, cloudevents: bool) -> None:
    if not isinstance(event, dict):
        raise WebhookInputError(f"event[{index}] is {type(event).__name__}, expected an object")
    is_cloudevent = "specversion" in event
    if cloudevents and not is_cloudevent:
        raise WebhookInputError(
            f"event[{index}]: content type says CloudEvents but 'specversion' is missing"
        )
    required = _CLOUDEVENT_REQUIRED if is_cloudevent else _EVENT_GRID_REQUIRED
    for name in required:
        value = event.get(name)
        if not isinstance(value, str) or not value.strip():
            raise WebhookInputError(f"event[{index}].{name} is missing or not a non-empty string")
    for name in ("time", "eventTime", "datacontenttype", "dataVersion", "subject"):
        if event.get(name, "") is None:
            del event[name]  # null is absent (CloudEvents JSON format); the converter would crash
        elif not isinstance(event.get(name, ""), str):
            raise WebhookInputError(f"event[{index}].{name} is not a string")
    if is_cloudevent and event["specversion"] != "1.0":
        raise WebhookInputError(
            f"event[{index}].specversion is {event['specversion']!r}; only '1.0' is supported"
        )


def to_binding(index: int, event: dict[str, Any]) -> Any:
    """Convert one event as the worker would (`azure.functions` eventGridTrigger converter)."""
    from azure.functions import meta
    from azure.functions.eventgrid import EventGridEventInConverter

    datum = meta.Datum(type="json", value=json.dumps(event))
    try:
        return EventGridEventInConverter.decode(datum, trigger_metadata=None)
    except (ValueError, TypeError) as exc:  # an unparseable eventTime/time is the usual culprit
        raise WebhookInputError(f"event[{index}]: {exc}") from exc
