"""Starting classic on-demand workflows at most once, on at-least-once inputs.

ExecuteWorkflow has no idempotency key: the intent is recorded in the state store before the call and completed
with the system job's id after it; an intent left without a job (a crash or a lost answer) is resolved by looking
for the system job of that workflow regarding that row before anything is started again. A claim younger than
`CLAIM_LEASE` (by the state store's clock) belongs to an overlapping run still at work and is left alone; the run
that left it alone has moved on (its journey progress is saved), so each timer run starts with `resume_workflows`,
which takes over the claims that outlived their lease. Shared by the journeys' launch-workflow tiles and the
sales-ready hand-off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dataverse.client import DataverseClient
from dataverse.errors import DataverseConnectionError, DataverseServerError
from dataverse.workflows import Workflow, execute_workflow, read_system_jobs, read_workflows, started_job
from statestore.port import EffectLedger, Intent, iso, parse_iso

__all__ = [
    "CLAIM_LEASE",
    "REFUSED",
    "WorkflowRun",
    "resume_workflows",
    "start_workflows",
    "workflow_problem",
    "workflow_problems",
]

log = logging.getLogger("abm.workflows")
CLAIM_LEASE = timedelta(minutes=10)
REFUSED = "refused"  # the job id of a start Dataverse refused: done, never sent again


@dataclass(frozen=True)
class WorkflowRun:
    """One workflow run to start once: its deterministic key, the workflow's id and the row it runs on."""

    key: str
    workflow_id: str
    entity_id: str


def workflow_problems(client: DataverseClient, expected: Mapping[str, str | None]) -> dict[str, str]:
    """For workflow ids mapped to the primary table each must run on (None: any): why each one that cannot run
    cannot (does not exist, not an activated on-demand workflow, another primary table), by lower-case id. One read."""
    if not expected:
        return {}
    found = read_workflows(client, expected)
    problems = {id.lower(): workflow_problem(found.get(id.lower()), entity) for id, entity in expected.items()}
    return {id: problem for id, problem in problems.items() if problem is not None}


def workflow_problem(workflow: Workflow | None, entity: str | None) -> str | None:
    """Why a workflow cannot be started on rows of `entity` (None: any table), or None when it can: the one rule for
    journeys' launch-workflow tiles, the sales-ready hand-off and resumed runs."""
    if workflow is None:
        return "does not exist in the org"
    if not workflow.runs_on_demand:
        return "is not an activated on-demand workflow"
    if entity is not None and workflow.primary_entity != entity:
        return f"runs on {workflow.primary_entity}, not on {entity}"
    return None


def _find_jobs(client: DataverseClient, runs: Sequence[WorkflowRun]) -> dict[str, str]:
    """System jobs already started for these runs, by run key: one query per 100 runs."""
    found: dict[str, str] = {}
    for start in range(0, len(runs), 100):
        chunk = runs[start : start + 100]
        wanted = {(r.workflow_id.lower(), r.entity_id.lower()): r.key for r in chunk}
        for job in read_system_jobs(client, [w for w, _ in wanted], [e for _, e in wanted]):
            pair = (job.workflow_id, job.regarding_id)
            if pair in wanted:
                found.setdefault(wanted[pair], job.id)
    return found


def _intent(run: WorkflowRun, job: str | None, stamp: str | None) -> Intent:
    """The intent of a workflow run: its job when known, and when this run claimed it."""
    return Intent(run.key, run.workflow_id, run.entity_id, job or None, stamp)


def _fresh(intent: Intent, now: datetime) -> bool:
    """Whether the intent's claim is younger than `CLAIM_LEASE` (its run may still be at work)."""
    return intent.claimed_at is not None and now - parse_iso(intent.claimed_at) < CLAIM_LEASE


def _claims(
    store: EffectLedger, client: DataverseClient, runs: Sequence[WorkflowRun], moment: datetime
) -> tuple[dict[str, str], list[WorkflowRun]]:
    """Sort runs into those already started (key → job) and those this call must start (claimed).

    A new run is claimed. An intent found without a job is resolved by looking for its system job; without one,
    a claim younger than `CLAIM_LEASE` belongs to an overlapping run still at work and is left alone, an older one
    to a run that died, and is taken over."""
    stamp = iso(moment)
    started: dict[str, str] = {}
    todo: list[WorkflowRun] = []
    unresolved: list[tuple[WorkflowRun, Intent]] = []
    for run in runs:
        intent = store.intent(run.key)
        if intent is not None and intent.job_id:
            started[run.key] = intent.job_id
        elif intent is None:
            if store.claim_intent(_intent(run, None, stamp)):
                todo.append(run)
        else:
            unresolved.append((run, intent))
    jobs = _find_jobs(client, [r for r, _ in unresolved]) if unresolved else {}
    for run, intent in unresolved:
        if run.key in jobs:
            store.record_intent(_intent(run, jobs[run.key], stamp))
            started[run.key] = jobs[run.key]
            continue
        if _fresh(intent, moment):
            continue  # an overlapping run holds a fresh claim
        if store.take_over_intent(intent, stamp):  # else another run took it over first
            todo.append(run)
    return started, todo


def start_workflows(
    client: DataverseClient,
    store: EffectLedger,
    runs: Sequence[WorkflowRun],
    attempts: int = 5,
) -> tuple[dict[str, str], int]:
    """Start each run at most once, ExecuteWorkflow calls grouped in `$batch` requests of 100 (there is no bulk
    message for it): returns the system job id by run key for those started (now or before), and how many this
    call started. A batch that fails (a server error, a connection reset, an answer lost) is resolved by looking for
    the jobs before anything is sent again, up to `attempts` sends.
    A start Dataverse refuses (a 4xx other than 429: the row or the workflow is gone, a privilege is missing) is
    recorded as `REFUSED` and never sent again; claims are stamped by the store's clock."""
    moment = store.clock()
    stamp = iso(moment)
    started, todo = _claims(store, client, runs, moment)
    newly = 0
    for start in range(0, len(todo), 100):
        chunk = todo[start : start + 100]
        for attempt in range(attempts):
            if attempt:  # the jobs found were started by this call's earlier attempt (its claim kept others off)
                jobs = _find_jobs(client, chunk)
                for run in chunk:
                    if run.key in jobs:
                        started[run.key] = jobs[run.key]
                        newly += 1
                        store.record_intent(_intent(run, jobs[run.key], stamp))
                chunk = [r for r in chunk if r.key not in jobs]
                if not chunk:
                    break
            requests = [execute_workflow(r.workflow_id, r.entity_id) for r in chunk]
            try:
                outcomes = client.batch(requests, continue_on_error=True)
            except (DataverseConnectionError, DataverseServerError):
                if attempt + 1 == attempts:
                    raise
                continue  # the batch may or may not have run: look for its jobs before trying again
            for run, outcome in zip(chunk, outcomes, strict=True):
                job = started_job(outcome.responses[0].body if outcome.ok and outcome.responses else None)
                if outcome.ok:
                    started[run.key] = job
                    newly += 1
                    store.record_intent(_intent(run, job, stamp))
                else:
                    error = outcome.error
                    status = error.status if error is not None else None
                    log.warning("workflow for %s not started: %s", run.key, error.summary if error else outcome.status)
                    if status is not None and 400 <= status < 500 and status != 429:
                        started[run.key] = REFUSED
                        store.record_intent(_intent(run, REFUSED, stamp))
            break
    return started, newly


def resume_workflows(client: DataverseClient, store: EffectLedger) -> tuple[dict[str, str], int]:
    """Finish what dead runs left (the timer runs this first): each intent without a job whose claim is older than
    `CLAIM_LEASE` is resolved (its system job looked up, else the workflow started), if its workflow can still run
    (one read); one that cannot stays open and is named in the log. Returns what `start_workflows` returns."""
    moment = store.clock()
    stale = [WorkflowRun(i.key, i.workflow_id, i.entity_id) for i in store.open_intents() if not _fresh(i, moment)]
    if not stale:
        return {}, 0
    problems = workflow_problems(client, dict.fromkeys((r.workflow_id for r in stale), None))
    for workflow, problem in sorted(problems.items()):
        log.warning("workflow %s %s: its runs left by an earlier run wait", workflow, problem)
    runnable = [r for r in stale if r.workflow_id.lower() not in problems]
    log.info("%d workflow runs left by an earlier run: resolving them", len(runnable))
    return start_workflows(client, store, runnable) if runnable else ({}, 0)
