"""Key Vault events (Secret/Key/Certificate NearExpiry, Expired...) delivered by Event Grid."""

import azure.functions as func

from functions._eventgrid import event_fields

bp = func.Blueprint()


@bp.event_grid_trigger(arg_name="event")
def on_keyvault_event(event: func.EventGridEvent) -> None:
    from pitcrew.intake import handle_delivered_event

    handle_delivered_event(**event_fields(event))
