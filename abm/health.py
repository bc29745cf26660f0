"""The health check admins run after a deploy: are the settings complete, and does Dataverse accept us?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from abm import __version__
from abm.settings import SettingsError
from dataverse.client import DataverseClient
from dataverse.errors import DataverseError

__all__ = ["HealthReport", "check_health"]


@dataclass(frozen=True)
class HealthReport:
    """`ok` with the application user's ids, or the problem: which setting, or which Dataverse error (no secrets)."""

    ok: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unavailable", "version": __version__, **self.details}


def check_health(client_factory: Callable[[], DataverseClient]) -> HealthReport:
    """Build the client and call WhoAmI: one request, which proves URL, token and the application user."""
    try:
        client = client_factory()
        who = client.who_am_i()
    except SettingsError as exc:
        return HealthReport(False, {"problem": "settings", "message": str(exc)})
    except DataverseError as exc:
        error = {"type": type(exc).__name__, "status": exc.status, "code": exc.code, "message": exc.message}
        error |= {"request_id": exc.request_id, "client_request_id": exc.client_request_id}
        return HealthReport(False, {"problem": "dataverse", "error": error})
    return HealthReport(
        True,
        {
            "dataverse": {
                "url": client.transport.config.org_url,
                "user_id": str(who.user_id),
                "business_unit_id": str(who.business_unit_id),
                "organization_id": str(who.organization_id),
            }
        },
    )
