"""Routes for operators and probes: health, and the audit trail (role Reader)."""

import azure.functions as func

from functions._http import headers_of, to_response

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.api import health as handle

    return to_response(handle())


# Operator routes carry no Functions key: App Service Authentication (Entra ID) admits only
# signed-in callers, and pitcrew.auth checks their role. Operators hold no shared secret.
@bp.route(route="audit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def list_audit(req: func.HttpRequest) -> func.HttpResponse:
    from pitcrew.api import list_audit as handle

    return to_response(handle(headers_of(req), dict(req.params)))
