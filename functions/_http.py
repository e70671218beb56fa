"""Translation between Functions HTTP types and pitcrew.http's plain HttpResult."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import azure.functions as func

# Operator routes carry no Functions key: App Service Authentication (Entra ID) admits only
# signed-in callers (see infra/), and pitcrew.auth.require checks their role in the app. Operators
# hold no shared secret; webhooks that machines call (alerts, events) keep the function key.
OPERATOR_AUTH = func.AuthLevel.ANONYMOUS

if TYPE_CHECKING:
    from pitcrew.http.errors import HttpResult


def headers_of(req: func.HttpRequest) -> dict[str, str]:
    return dict(req.headers.items())


def to_response(result: HttpResult) -> func.HttpResponse:
    if result.body is None:
        return func.HttpResponse(status_code=result.status, headers=dict(result.headers))
    return func.HttpResponse(
        json.dumps(result.body, default=str),
        status_code=result.status,
        headers=dict(result.headers),
        mimetype="application/json",
    )
