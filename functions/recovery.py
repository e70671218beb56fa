"""Recovery readiness: daily backup checks, restore drills (started when due, resumed every five
minutes), the image purge, and the operator routes /api/backups, /api/drills, /api/images/purge
(Reader to view, Operator to act)."""

import azure.functions as func

from functions._http import OPERATOR_AUTH, headers_of, to_response

bp = func.Blueprint()


@bp.timer_trigger(schedule="0 30 5 * * *", arg_name="timer",
                  run_on_startup=False)
def check_backups(timer: func.TimerRequest) -> None:
    from pitcrew.housekeeping.recovery_api import run_backup_checks  # lazy: cold start

    run_backup_checks()


@bp.timer_trigger(schedule="0 0 4 * * *", arg_name="timer", run_on_startup=False)
def run_due_drills(timer: func.TimerRequest) -> None:
    from pitcrew.housekeeping.recovery_api import run_due_drills as run  # lazy: cold start

    run()


@bp.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
def resume_drills(timer: func.TimerRequest) -> None:
    from pitcrew.housekeeping.recovery_api import resume_drills as resume  # lazy: cold start

    resume()


@bp.timer_trigger(schedule="0 40 2 * * *", arg_name="timer", run_on_startup=False)
def purge_images(timer: func.TimerRequest) -> None:
    from pitcrew.housekeeping.recovery_api import run_image_purge  # lazy: cold start

    run_image_purge()


@bp.route(route="backups", methods=["GET"], auth_level=OPERATOR_AUTH)
def list_backups(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.housekeeping.recovery_api import list_backups as view  # lazy: cold start

    return to_response(view(headers_of(req), dict(req.params)))


@bp.route(route="drills", methods=["GET"], auth_level=OPERATOR_AUTH)
def list_drills(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.housekeeping.recovery_api import list_drills as view  # lazy: cold start

    return to_response(view(headers_of(req), dict(req.params)))


@bp.route(route="drills/{name}/run", methods=["POST"], auth_level=OPERATOR_AUTH)
def run_drill(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.housekeeping.recovery_api import run_drill as run  # lazy: cold start

    return to_response(run(headers_of(req), req.route_params["name"], req.get_body()))


@bp.route(route="images/purge", methods=["POST"], auth_level=OPERATOR_AUTH)
def images_purge(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.housekeeping.recovery_api import purge_images as purge  # lazy: cold start

    return to_response(purge(headers_of(req), req.get_body()))
