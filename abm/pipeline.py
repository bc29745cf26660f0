"""The main job: pull what the engine reasons over from Dataverse, and report what it read and what it cost.

First version (issue 3): pull accounts, contacts, leads, opportunities and interactions with `$select` and
5,000-row pages, and count them. Later issues add segments, journeys, scoring and the write-back to the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dataverse.client import DataverseClient
from dataverse.query import Query
from dataverse.tables import Table, table

__all__ = ["PULLS", "RunReport", "run_main_job"]

# What each pull reads: the table, the key under `tenant` in the report, and the columns every rule needs.
PULLS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("account", "accounts", ("name", "_ownerid_value")),
    ("contact", "contacts", ("_parentcustomerid_value", "msgdpr_gdprconsent", "donotbulkemail")),
    ("lead", "leads", ("_parentaccountid_value", "_parentcontactid_value", "statecode")),
    ("opportunity", "opportunities", ("_customerid_value", "statecode", "createdon")),
    ("abm_interaction", "interactions", ("_abm_contactid_value", "abm_type", "abm_occurredon")),
)


@dataclass(frozen=True)
class RunReport:
    """What a run did: the moment it ran for, the rows it read per kind, and the requests it sent."""

    now: datetime
    tenant: dict[str, int]
    requests: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tenant": self.tenant,
            "requests": self.requests,
        }


def _count(client: DataverseClient, source: Table, columns: Sequence[str]) -> int:
    query = Query(source.entity_set).select(source.primary_key, *columns)
    return sum(len(page.rows) for page in client.iter_pages(query))


def run_main_job(client: DataverseClient, *, now: datetime) -> RunReport:
    """Pull every kind of record the engine needs and report counts and the request bill (the client's own count:
    give the job a client of its own so that nothing else is billed to the run)."""
    tenant = {key: _count(client, table(name), columns) for name, key, columns in PULLS}
    return RunReport(now, tenant, client.stats.as_dict())
