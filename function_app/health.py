"""`GET /api/health` (function key): settings complete and Dataverse reachable as the application user?

Admins call it after a deploy or a settings change; it answers 200 with the application user's ids, or 503 naming
the missing setting or the Dataverse error (status, code, request ids), never a secret.
"""

from __future__ import annotations

import json

import azure.functions as func

from abm.bootstrap import shared_client
from abm.health import check_health

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def health(req: func.HttpRequest) -> func.HttpResponse:
    report = check_health(shared_client)
    return func.HttpResponse(
        json.dumps(report.as_dict()),
        status_code=200 if report.ok else 503,
        mimetype="application/json",
    )
