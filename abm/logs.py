"""The one logging rule of every entry point: the engine's own loggers (`abm.*`, `dataverse.*`, `statestore.*`)
write ids, counts, tables and error kinds, never a row's values; the libraries beneath them do not keep to that
(urllib3's DEBUG lines carry whole URLs with `$filter` values such as account names; the Azure SDK's request
logging carries table keys, among them consent rows' email addresses), so they stay at WARNING whatever the
verbosity. The command line calls `configure`; the Function app, whose host owns the handlers, `quiet_libraries`.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["LIBRARIES", "configure", "quiet_libraries"]

LIBRARIES = ("urllib3", "requests", "azure", "msal", "httpx")  # their records may quote values; never below WARNING


def quiet_libraries() -> None:
    """Keep the libraries' loggers at WARNING, whatever the root logger's level."""
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure(*, verbose: bool) -> None:
    """The command line's logging: warnings on stderr, with `-v` the engine's debug lines too (each Dataverse
    request by method, table, status and duration), never the libraries' below WARNING."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    quiet_libraries()
