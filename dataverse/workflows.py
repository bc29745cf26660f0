"""Classic workflows as the Web API has them: the workflow rows a check reads, the system jobs (`asyncoperations`) a
start left, and the ExecuteWorkflow request with the job id its answer carries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dataverse.batch import BatchRequest
from dataverse.client import DataverseClient
from dataverse.query import Query, in_
from dataverse.tables import table

__all__ = ["SystemJob", "Workflow", "execute_workflow", "read_system_jobs", "read_workflows", "started_job"]

WORKFLOWS = table("workflow")
JOBS = table("asyncoperation")
_ACTIVATED = 1  # workflow statecode: Activated


@dataclass(frozen=True)
class Workflow:
    """A workflow: the table it runs on, whether it may be started on demand, its state."""

    id: str
    primary_entity: str | None
    on_demand: bool
    state: int | None

    @property
    def runs_on_demand(self) -> bool:
        """Activated and on demand: what ExecuteWorkflow needs."""
        return self.on_demand and self.state == _ACTIVATED


def read_workflows(client: DataverseClient, ids: Iterable[str]) -> dict[str, Workflow]:
    """The workflows with these ids that exist, by lower-case id (one read)."""
    query = (
        Query(WORKFLOWS.entity_set)
        .select("primaryentity", "ondemand", "statecode")
        .where(in_(WORKFLOWS.primary_key, sorted({uuid.UUID(w) for w in ids})))
    )
    found = (
        Workflow(
            str(row[WORKFLOWS.primary_key]).lower(),
            row.get("primaryentity"),
            bool(row.get("ondemand")),
            row.get("statecode"),
        )
        for row in client.iter_rows(query)
    )
    return {w.id: w for w in found}


@dataclass(frozen=True)
class SystemJob:
    """A system job a workflow start left: its id, the workflow and the row it runs on (lower-case ids)."""

    id: str
    workflow_id: str
    regarding_id: str


def read_system_jobs(
    client: DataverseClient, workflow_ids: Iterable[str], regarding_ids: Iterable[str]
) -> list[SystemJob]:
    """The system jobs of any of these workflows regarding any of these rows (one paged read; keep each list to
    100 or so ids)."""
    query = (
        Query(JOBS.entity_set)
        .select(JOBS.primary_key, "_regardingobjectid_value", "_workflowactivationid_value")
        .where(in_("_workflowactivationid_value", sorted({uuid.UUID(w) for w in workflow_ids})))
        .where(in_("_regardingobjectid_value", sorted({uuid.UUID(e) for e in regarding_ids})))
    )
    return [
        SystemJob(
            str(row[JOBS.primary_key]),
            str(row["_workflowactivationid_value"]).lower(),
            str(row["_regardingobjectid_value"]).lower(),
        )
        for row in client.iter_rows(query)
    ]


def execute_workflow(workflow_id: str, entity_id: str) -> BatchRequest:
    """The ExecuteWorkflow request that starts a workflow for one row (for a `$batch`)."""
    return BatchRequest(
        "POST", f"{WORKFLOWS.entity_set}({workflow_id})/Microsoft.Dynamics.CRM.ExecuteWorkflow", {"EntityId": entity_id}
    )


def started_job(body: Any) -> str:
    """The system job id an ExecuteWorkflow answer carries ("" when it carries none)."""
    if not isinstance(body, dict):
        return ""
    return str(body.get("Id") or body.get("asyncoperationid") or "")
