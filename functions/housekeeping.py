"""The expiry sweep: the sweep_expiry timer (hourly; it sweeps once per expiry.interval_hours,
daily by default), POST /api/expiry/sweep and GET /api/expiry."""

import azure.functions as func

from functions._http import OPERATOR_AUTH, headers_of, to_response

bp = func.Blueprint()


# Every hour at :07; the sweep itself runs once per `expiry.interval_hours` (a claim per interval).
@bp.timer_trigger(schedule="0 7 * * * *", arg_name="timer", run_on_startup=False)
def sweep_expiry(timer: func.TimerRequest) -> None:
    from pitcrew.housekeeping.api import sweep_expiry as sweep  # lazy: cold start

    sweep()


@bp.route(route="expiry", methods=["GET"], auth_level=OPERATOR_AUTH)
def list_expiry(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.housekeeping.api import list_expiry as handle  # lazy: cold start

    return to_response(handle(headers_of(req), dict(req.params)))


@bp.route(route="expiry/sweep", methods=["POST"], auth_level=OPERATOR_AUTH)
def request_expiry_sweep(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.housekeeping.api import request_sweep as handle  # lazy: cold start

    return to_response(handle(headers_of(req), req.get_body()))
