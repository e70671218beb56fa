"""The Function App: builds func.FunctionApp and registers one Blueprint per area."""

import azure.functions as func

from functions import (
    alerting,
    console,
    deadletter,
    housekeeping,
    intake,
    notify,
    operator,
    quota,
    recovery,
    rotation,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (rotation.bp, intake.bp, notify.bp, operator.bp, deadletter.bp,
                  console.bp, housekeeping.bp, recovery.bp, quota.bp, alerting.bp):
    app.register_functions(blueprint)
