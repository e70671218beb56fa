"""The operator console (/api/console and its assets, from the pitcrew.console package) and
`GET /api/me`: behind App Service Authentication like the operator API (Reader at least)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import OPERATOR_AUTH, headers_of, to_response

if TYPE_CHECKING:
    from pitcrew.console import StaticResult

bp = func.Blueprint()


def _static(result: StaticResult) -> func.HttpResponse:
    return func.HttpResponse(result.body, status_code=result.status,
                             headers={**result.headers, "Content-Type": result.content_type})


@bp.route(route="console", methods=["GET"], auth_level=OPERATOR_AUTH)
def console_index(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.console import serve  # lazy: cold start

    return _static(serve(headers_of(req)))


@bp.route(route="console/{asset}", methods=["GET"], auth_level=OPERATOR_AUTH)
def console_asset(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.console import serve  # lazy: cold start

    return _static(serve(headers_of(req), req.route_params.get("asset", "")))


@bp.route(route="me", methods=["GET"], auth_level=OPERATOR_AUTH)
def me(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.console import me as handle  # lazy: cold start

    return to_response(handle(headers_of(req)))
