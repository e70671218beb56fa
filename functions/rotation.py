"""Key Vault events (Secret/Key/Certificate NearExpiry, Expired...) delivered by Event Grid."""

import azure.functions as func

bp = func.Blueprint()


@bp.event_grid_trigger(arg_name="event")
def on_keyvault_event(event: func.EventGridEvent) -> None:
    from pitcrew.intake import handle_delivered_event

    handle_delivered_event(
        id=event.id,
        event_type=event.event_type,
        subject=event.subject,
        topic=event.topic,
        event_time=event.event_time,
        data=event.get_json(),
        data_version=event.data_version,
    )
