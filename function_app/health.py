"""`GET /api/health` (anonymous): can this app work? Settings, Dataverse, the product's schema, change tracking,
the definitions (their files, and their columns in the org).

Anonymous so that availability probes (App Service health check, a load balancer, a status page) can call it without
a key. It therefore answers only the status and one entry per check (ok, or the problem), never the org URL, the
application user's ids or any secret: values of secret settings are redacted from whatever a failing check says,
and ids, URLs and host names in error texts are masked.
200 when every check passes, 503 otherwise. An answer is reused for `CACHE_SECONDS`, so that calling it in a loop
costs Dataverse at most a dozen requests per window (service protection limits are per user).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping

import azure.functions as func

from abm.admin.health import HealthReport, check_health, secret_values
from abm.bootstrap import build_setup, shared_client
from abm.definitions import DefinitionErrors
from abm.jobs.columns import column_problems
from abm.settings import Settings, environment

bp = func.Blueprint()

CACHE_SECONDS = 30.0


class _Cache:
    """The last answer and when it was made; one check at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answer: tuple[float, int, str] | None = None

    def get(self, make: Callable[[], tuple[int, str]]) -> tuple[int, str]:
        with self.lock:
            now = time.monotonic()
            if self.answer is None or now - self.answer[0] >= CACHE_SECONDS:
                self.answer = (now, *make())
            return self.answer[1], self.answer[2]


_cache = _Cache()


def _definitions() -> None:
    """The definitions the webhook and the timer would run: every problem of their files, then their columns
    against the org (the metadata reads of `abm.jobs.columns`), so health fails when every run would."""
    setup = build_setup(Settings.from_env())
    problems = column_problems(shared_client(), setup)
    if problems:
        raise DefinitionErrors(problems)


def extra_checks() -> Mapping[str, Callable[[], None]]:
    """Checks other parts of the app add by name; each raises when it fails."""
    return {"definitions": _definitions}


def _answer() -> tuple[int, str]:
    report: HealthReport = check_health(
        shared_client, deep=True, settings_factory=Settings.from_env, extra_checks=extra_checks()
    )
    body = report.public_dict(secret_values(environment()))
    return (200 if report.ok else 503), json.dumps(body)


def reset_cache() -> None:
    """Forget the cached answer (tests, or after the settings changed)."""
    with _cache.lock:
        _cache.answer = None


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    status, body = _cache.get(_answer)
    return func.HttpResponse(
        body, status_code=status, mimetype="application/json", headers={"Cache-Control": "no-store"}
    )
