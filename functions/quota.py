"""Quota and capacity: the scan and follow timers, and the operator routes under /api/quota
(Reader to view, Operator to request increases and scan now)."""

import azure.functions as func

from functions._http import OPERATOR_AUTH, headers_of, to_response

bp = func.Blueprint()


@bp.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
def scan_quotas(timer: func.TimerRequest) -> None:
    from pitcrew.quota.api import run_scheduled_scan  # lazy: cold start

    run_scheduled_scan()


@bp.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
def follow_quota_requests(timer: func.TimerRequest) -> None:
    from pitcrew.quota.api import run_follow  # lazy: cold start

    run_follow()


@bp.route(route="quota", methods=["GET"], auth_level=OPERATOR_AUTH)
def quota_list(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.quota.api import list_quotas  # lazy: cold start

    return to_response(list_quotas(headers_of(req), dict(req.params)))


@bp.route(route="quota/requests", methods=["GET"], auth_level=OPERATOR_AUTH)
def quota_list_requests(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.quota.api import list_requests  # lazy: cold start

    return to_response(list_requests(headers_of(req), dict(req.params)))


@bp.route(route="quota/requests", methods=["POST"], auth_level=OPERATOR_AUTH)
def quota_create_request(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.quota.api import create_request  # lazy: cold start

    return to_response(create_request(headers_of(req), req.get_body()))


@bp.route(route="quota/scan", methods=["POST"], auth_level=OPERATOR_AUTH)
def quota_scan(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.quota.api import scan_now  # lazy: cold start

    return to_response(scan_now(headers_of(req)))
