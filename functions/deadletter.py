"""Dead letters: ingest (Service Bus event, timer scan), retention purge, replay jobs, and the
operator routes under /api/dlq (Reader to view, Operator to act)."""

import azure.functions as func

from functions._eventgrid import binding_event
from functions._http import OPERATOR_AUTH, headers_of, to_response

bp = func.Blueprint()


@bp.event_grid_trigger(arg_name="event")
def on_servicebus_deadletter(event: func.EventGridEvent) -> None:
    from pitcrew.intake.pipeline import handle_delivered_event  # lazy: cold start

    handle_delivered_event(binding_event(event), function="on_servicebus_deadletter")


@bp.timer_trigger(schedule="0 */1 * * * *", arg_name="timer", run_on_startup=False)
def scan_deadletters(timer: func.TimerRequest) -> None:
    from pitcrew.deadletter.api import run_scan  # lazy: cold start

    run_scan()


@bp.timer_trigger(schedule="0 17 3 * * *", arg_name="timer", run_on_startup=False)
def purge_failed_messages(timer: func.TimerRequest) -> None:
    from pitcrew.deadletter.api import run_purge  # lazy: cold start

    run_purge()


@bp.queue_trigger(arg_name="msg", queue_name="pitcrew-replay-jobs",
                  connection="AzureWebJobsStorage")
def run_replay_job(msg: func.QueueMessage) -> None:
    from pitcrew.deadletter.api import run_replay_job as run  # lazy: cold start

    run(msg.get_body().decode("utf-8"))


@bp.queue_trigger(arg_name="msg", queue_name="pitcrew-scan-jobs",
                  connection="AzureWebJobsStorage")
def run_scan_job(msg: func.QueueMessage) -> None:
    from pitcrew.deadletter.api import run_scan_job as run  # lazy: cold start

    run(msg.get_body().decode("utf-8"))


# Every 30 s, no longer than the replay lease (pitcrew.deadletter.replay.LEASE): a tick always
# falls within a dead worker's last lease and schedules the takeover for the moment it ends.
@bp.timer_trigger(schedule="10,40 * * * * *", arg_name="timer", run_on_startup=False)
def resume_replay_jobs(timer: func.TimerRequest) -> None:
    from pitcrew.deadletter.api import resume_replay_jobs as resume  # lazy: cold start

    resume()


@bp.route(route="dlq/groups", methods=["GET"], auth_level=OPERATOR_AUTH)
def dlq_list_groups(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import list_groups  # lazy: cold start

    return to_response(list_groups(headers_of(req), dict(req.params)))


@bp.route(route="dlq/groups/{group}", methods=["GET"], auth_level=OPERATOR_AUTH)
def dlq_show_group(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import show_group  # lazy: cold start

    return to_response(show_group(headers_of(req), req.route_params["group"], dict(req.params)))


@bp.route(route="dlq/messages/{message}", methods=["GET"], auth_level=OPERATOR_AUTH)
def dlq_show_message(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import show_message  # lazy: cold start

    return to_response(show_message(headers_of(req), req.route_params["message"],
                                    dict(req.params)))


@bp.route(route="dlq/messages/{message}/edit", methods=["POST"],
          auth_level=OPERATOR_AUTH)
def dlq_edit_message(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import edit_message  # lazy: cold start

    return to_response(edit_message(headers_of(req), req.route_params["message"],
                                    req.get_body()))


@bp.route(route="dlq/archive", methods=["POST"], auth_level=OPERATOR_AUTH)
def dlq_archive(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import archive  # lazy: cold start

    return to_response(archive(headers_of(req), req.get_body()))


@bp.route(route="dlq/scan", methods=["POST"], auth_level=OPERATOR_AUTH)
def dlq_scan(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import scan_now  # lazy: cold start

    return to_response(scan_now(headers_of(req), req.get_body()))


@bp.route(route="dlq/scans/{scan}", methods=["GET"], auth_level=OPERATOR_AUTH)
def dlq_show_scan(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import show_scan  # lazy: cold start

    return to_response(show_scan(headers_of(req), req.route_params["scan"]))


@bp.route(route="dlq/purge", methods=["POST"], auth_level=OPERATOR_AUTH)
def dlq_purge(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import purge  # lazy: cold start

    return to_response(purge(headers_of(req), req.get_body()))


@bp.route(route="dlq/replays", methods=["GET", "POST"], auth_level=OPERATOR_AUTH)
def dlq_replays(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import list_replays, request_replay  # lazy: cold start

    if req.method.upper() == "POST":
        return to_response(request_replay(headers_of(req), req.get_body()))
    return to_response(list_replays(headers_of(req), dict(req.params)))


@bp.route(route="dlq/replays/{job}", methods=["GET"], auth_level=OPERATOR_AUTH)
def dlq_show_replay(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import show_replay  # lazy: cold start

    return to_response(show_replay(headers_of(req), req.route_params["job"]))


@bp.route(route="dlq/replays/{job}/{action}", methods=["POST"],
          auth_level=OPERATOR_AUTH)
def dlq_control_replay(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.deadletter.api import control_replay  # lazy: cold start

    return to_response(control_replay(headers_of(req), req.route_params["job"],
                                      req.route_params["action"]))
