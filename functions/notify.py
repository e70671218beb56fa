"""Notification housekeeping: the durable outbox's retry timer."""

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(schedule="0 */1 * * * *", arg_name="timer", run_on_startup=False)
def retry_outbox(timer: func.TimerRequest) -> None:
    from pitcrew.intake.api import drain_outbox  # lazy: cold start

    drain_outbox()
