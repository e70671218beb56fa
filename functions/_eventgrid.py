"""Event Grid binding objects -> plain data. The binding hands over a func.EventGridEvent for
the Event Grid schema (identity: topic + id) and, with recent azure-functions, a func.CloudEvent
for CloudEvents 1.0 (identity: source + id); the schema travels with the fields."""

from __future__ import annotations

import azure.functions as func

from pitcrew.events import BindingEvent


def binding_event(event: func.EventGridEvent | func.CloudEvent) -> BindingEvent:
    if isinstance(event, func.CloudEvent):
        return BindingEvent(
            event.id, event.type, event.subject, source=event.source, event_time=event.time,
            data=event.get_json(), data_version=event.dataschema, schema="cloudevents",
        )
    return BindingEvent(
        event.id, event.event_type, event.subject, topic=event.topic,
        event_time=event.event_time, data=event.get_json(), data_version=event.data_version,
    )
