"""The mapping boundary holds: `dataverse/` maps rows to records and records to rows, so no module of the service
(`abm/`) spells a lookup property (`_x_value`), an `@odata.` key (`@odata.bind`, `@odata.id`) or the lookup-name
annotation; it hands typed write requests to `dataverse/` and gets typed records back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A string ending in a lookup property (`"_parentaccountid_value"`, `f"_{column}_value"`, `c.endswith("_value")`),
# a lookup property with an annotation (`_x_value@...`), an OData control key, the lookup-name annotation.
WIRE_NAMES = re.compile(r"""_value["'@]|@odata\.|lookuplogicalname""", re.IGNORECASE)


def wire_names(text: str) -> list[str]:
    return [f"{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1) if WIRE_NAMES.search(line)]


@pytest.mark.parametrize("path", sorted((ROOT / "abm").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_service_module_spells_a_wire_name(path: Path) -> None:
    assert wire_names(path.read_text(encoding="utf-8")) == []


def test_the_checker_catches_each_form_of_a_wire_name() -> None:
    sample = "\n".join(
        [
            'lead = row.get("_parentaccountid_value")',
            "column = f'_{columns.contact}_value'",
            'names = {c[1:-6] if c.endswith("_value") else c for c in columns}',
            'kind = row.get(f"_parentcustomerid_value@{ANNOTATION}")',
            'body["ownerid@odata.bind"] = path',
            'body[f"regardingobjectid_{logical}_{kind}@odata.bind"] = path',
            'annotations = ["Microsoft.Dynamics.CRM.lookuplogicalname"]',
        ]
    )
    assert len(wire_names(sample)) == 7


def test_the_checker_lets_plain_names_through() -> None:
    sample = "\n".join(
        [
            'ColumnSpec("abm_ModelVersion", "Model version", "integer", "Version", min_value=0)',
            "keyword, expected = error.validator, error.validator_value",
            'location = headers.get("odata-entityid", "")',
            '"""Rows as Dataverse returns them; `dataverse.mapping` reads their lookups."""',
        ]
    )
    assert wire_names(sample) == []


def test_the_dataverse_package_is_where_the_wire_names_are() -> None:
    """The other side of the boundary: the names the service no longer spells are spelled in `dataverse/`."""
    found = {path.name for path in (ROOT / "dataverse").glob("*.py") if wire_names(path.read_text(encoding="utf-8"))}
    assert {"mapping.py", "rows.py", "scores.py", "workflows.py", "registration.py"} <= found
