"""Key Vault events (Secret/Key/Certificate NearExpiry, Expired...) delivered by Event Grid,
manual rotations (POST/GET /api/rotations) and the advance_rotations timer."""

import azure.functions as func

from functions._eventgrid import binding_event
from functions._http import OPERATOR_AUTH, headers_of, to_response

bp = func.Blueprint()


@bp.event_grid_trigger(arg_name="event")
def on_keyvault_event(event: func.EventGridEvent) -> None:
    from pitcrew.intake.pipeline import handle_delivered_event  # lazy: cold start

    handle_delivered_event(binding_event(event), function="on_keyvault_event")


@bp.route(route="rotations", methods=["POST"], auth_level=OPERATOR_AUTH)
def request_rotation(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.rotation.api import request_rotation as handle  # lazy: cold start

    return to_response(handle(headers_of(req), req.get_body()))


@bp.route(route="rotations", methods=["GET"], auth_level=OPERATOR_AUTH)
def list_rotations(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.rotation.api import list_rotations as handle  # lazy: cold start

    return to_response(handle(headers_of(req), dict(req.params)))


# Every minute: a run whose instance crashed resumes once its step lease (30 s) lapses.
@bp.timer_trigger(schedule="0 * * * * *", arg_name="timer", run_on_startup=False)
def advance_rotations(timer: func.TimerRequest) -> None:
    from pitcrew.rotation.api import advance_rotations as advance  # lazy: cold start

    advance()
