"""Alerting: group flushes (a queue message made visible when a group is due, and a timer that
sweeps anything overdue and watches stuck deliveries), and the operator routes for alerts,
silences and notifications (Reader to view, Operator to act)."""

import azure.functions as func

from functions._http import OPERATOR_AUTH, headers_of, to_response

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name="pitcrew-alert-groups",
                  connection="AzureWebJobsStorage")
def flush_alert_group(msg: func.QueueMessage) -> None:
    from pitcrew.alerting.api import flush_group  # lazy: cold start

    flush_group(msg.get_body().decode("utf-8"))


@bp.timer_trigger(schedule="15 */1 * * * *", arg_name="timer", run_on_startup=False)
def sweep_alert_groups(timer: func.TimerRequest) -> None:
    from pitcrew.alerting.api import sweep  # lazy: cold start

    sweep()


# GET on the alert webhook's route: a function of its own, with operator auth (the POST keeps
# its function key).
@bp.route(route="alerts", methods=["GET"], auth_level=OPERATOR_AUTH)
def list_alerts(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.alerting.api import list_alerts as handle  # lazy: cold start

    return to_response(handle(headers_of(req), dict(req.params)))


@bp.route(route="silences", methods=["GET", "POST"], auth_level=OPERATOR_AUTH)
def silences(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.alerting.api import silences as handle  # lazy: cold start

    return to_response(handle(req.method, headers_of(req), dict(req.params), req.get_body()))


# GET and DELETE on one silence: a function each (Reader views, Operator expires), as on the
# alerts route.
@bp.route(route="silences/{silence}", methods=["GET"], auth_level=OPERATOR_AUTH)
def show_silence(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.alerting.api import show_silence as handle  # lazy: cold start

    return to_response(handle(headers_of(req), req.route_params["silence"]))


@bp.route(route="silences/{silence}", methods=["DELETE"], auth_level=OPERATOR_AUTH)
def expire_silence(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.alerting.api import expire_silence as handle  # lazy: cold start

    return to_response(handle(headers_of(req), req.route_params["silence"]))


@bp.route(route="notifications", methods=["GET"], auth_level=OPERATOR_AUTH)
def list_notifications(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.alerting.api import list_notifications as handle  # lazy: cold start

    return to_response(handle(headers_of(req), dict(req.params)))


@bp.route(route="notifications/{notification}/retry", methods=["POST"],
          auth_level=OPERATOR_AUTH)
def retry_notification(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.alerting.api import retry_notification as handle  # lazy: cold start

    return to_response(handle(headers_of(req), req.route_params["notification"]))
