"""Event Grid binding objects -> plain data. The binding hands over a func.EventGridEvent for
the Event Grid schema (identity: topic + id) and, with recent azure-functions, a func.CloudEvent
for CloudEvents 1.0 (identity: source + id); the schema travels with the fields."""

from __future__ import annotations

from typing import Any

import azure.functions as func


def event_fields(event: func.EventGridEvent | func.CloudEvent) -> dict[str, Any]:
    if isinstance(event, func.CloudEvent):
        return {
            "schema": "cloudevents",
            "id": event.id,
            "event_type": event.type,
            "subject": event.subject,
            "source": event.source,
            "event_time": event.time,
            "data": event.get_json(),
            "data_version": event.dataschema,
        }
    return {
        "schema": "eventgrid",
        "id": event.id,
        "event_type": event.event_type,
        "subject": event.subject,
        "topic": event.topic,
        "event_time": event.event_time,
        "data": event.get_json(),
        "data_version": event.data_version,
    }
