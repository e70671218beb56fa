"""Routes for operators and probes: health, and the audit trail (role Reader)."""

import azure.functions as func

from functions._http import OPERATOR_AUTH, headers_of, to_response

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.http.operator import health as handle  # lazy: cold start

    return to_response(handle())


@bp.route(route="audit", methods=["GET"], auth_level=OPERATOR_AUTH)
def list_audit(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.http.operator import list_audit as handle  # lazy: cold start

    return to_response(handle(headers_of(req), dict(req.params)))
