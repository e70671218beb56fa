"""Events and alerts that arrive over HTTP: custom Event Grid topics, CloudEvents webhooks and
Azure Monitor action groups (Common Alert Schema)."""

import azure.functions as func

from functions._http import OPERATOR_AUTH, headers_of, to_response

bp = func.Blueprint()


@bp.route(route="events", methods=["POST", "OPTIONS"], auth_level=func.AuthLevel.FUNCTION)
def receive_events(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.intake.api import receive_events as handle  # lazy: cold start

    return to_response(handle(req.method, headers_of(req), req.get_body()))


@bp.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def receive_alert(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.intake.api import receive_alert as handle  # lazy: cold start

    return to_response(handle(headers_of(req), req.get_body()))


@bp.route(route="events/rejected", methods=["GET"], auth_level=OPERATOR_AUTH)
def list_rejected_events(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.intake.api import list_rejected  # lazy: cold start

    return to_response(list_rejected(headers_of(req), dict(req.params)))
