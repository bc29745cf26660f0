"""The columns the definitions name, checked against the org's metadata before a run sends anything naming them.

A column that does not exist in the org would otherwise fail a run midway with only Dataverse's message, naming
neither the definition file nor the place in it. The check reads each named table's columns once (one metadata
request per table) for a definitions fingerprint, and keeps the fingerprint it found clean as a checkpoint, so a
normal run sends nothing for it.
"""

from __future__ import annotations

import difflib
from collections import defaultdict

from abm.definitions import DefinitionError, DefinitionErrors
from abm.jobs.pipeline import RunSetup
from dataverse.client import DataverseClient
from dataverse.metadata import MetadataClient
from dataverse.tables import table
from statestore.port import Checkpoints

__all__ = ["CHECKED", "check_columns", "column_problems"]

CHECKED = "definitions"  # checkpoint: the run setup fingerprint whose columns the org was found to have
INTERACTIONS = table("abm_interaction").logical_name


def column_problems(client: DataverseClient, setup: RunSetup) -> list[DefinitionError]:
    """Every column the definitions name that its table in the org does not have (with the nearest names it has),
    and every table that is not there: one metadata read per table named."""
    named: dict[str, list[tuple[DefinitionError, str]]] = defaultdict(list)
    mapped = setup.config.interactions.attributes
    for ref in setup.columns:
        where, column = ref.table, ref.column
        if where == "interaction":
            where, column = INTERACTIONS, mapped.get(column, column)
        named[where].append((DefinitionError(ref.file, ref.path, ""), column))
    meta, problems = MetadataClient(client), []
    for name in sorted(named):
        info = meta.table(name, attributes=True)
        columns = set(info.attributes or {}) if info is not None else set()
        for place, column in named[name]:
            if info is None:
                reason = f"the table {name!r} does not exist in the org"
            elif column not in columns:
                near = difflib.get_close_matches(column, sorted(columns), n=3)
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                reason = f"{name} has no column {column!r} in the org{hint}"
            else:
                continue
            problems.append(DefinitionError(place.file, place.path, reason))
    return problems


def check_columns(client: DataverseClient, store: Checkpoints, setup: RunSetup) -> None:
    """Raise `DefinitionErrors` for columns the org lacks, unless this setup's columns were found before."""
    fingerprint = setup.fingerprint()
    if store.checkpoint(CHECKED) == fingerprint:
        return
    problems = column_problems(client, setup)
    if problems:
        raise DefinitionErrors(problems)
    store.save_checkpoints({CHECKED: fingerprint})
