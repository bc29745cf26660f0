"""How the `abm` command ends on an error: the service's error kinds to exit statuses, once, in a table.

0 is success. A service error (`abm.errors`) or a Dataverse failure (by its kind, status, code and request ids:
Dataverse's own message can quote row values) is printed on stderr as `abm: <message>` and
ends the command with the status `EXIT_STATUSES` gives its kind: 2 for what the user can fix in the command line or
the configuration, 1 for what is not there or what the org refuses; 3 (`PARTIAL_FAILURE`) when a sync went on past
writes that failed for good (listed under `failures`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from abm.errors import InvalidInput, NotConfigured, NotFound, Refused, ServiceError, UpstreamError

__all__ = ["EXIT_STATUSES", "PARTIAL_FAILURE", "run_command"]

PARTIAL_FAILURE = 3  # the run went on past writes that failed for good: they are due again next run

# Error kind -> (exit status, what the message starts with). The most specific kind an error is decides.
EXIT_STATUSES: dict[type[Exception], tuple[int, str]] = {
    InvalidInput: (2, ""),
    NotConfigured: (2, ""),
    NotFound: (1, ""),
    Refused: (1, ""),
    UpstreamError: (1, "Dataverse: "),
}


def run_command(command: Callable[[], int]) -> int:
    """Run a command; its exit status, or the status of the error that ended it (printed on stderr)."""
    try:
        return command()
    except (ServiceError, UpstreamError) as exc:
        status, prefix = next(EXIT_STATUSES[kind] for kind in type(exc).__mro__ if kind in EXIT_STATUSES)
        message = exc.summary if isinstance(exc, UpstreamError) else str(exc)  # Dataverse's own may quote values
        print(f"abm: {prefix}{message}", file=sys.stderr)
        return status
