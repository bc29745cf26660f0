"""The bound actions the service calls besides the bulk messages: SendEmail and ExecuteWorkflow."""

from __future__ import annotations

import uuid
from typing import Any

from devtools.emulator.errors import bad_request, not_found
from devtools.emulator.keys import GUID
from devtools.emulator.schema import TableDef, by_logical_name
from devtools.emulator.store import Store
from devtools.emulator.wire import Answer, now_iso

__all__ = ["Actions"]


class Actions:
    """SendEmail on an email, ExecuteWorkflow on a workflow (recorded as a completed system job)."""

    def __init__(self, store: Store, user_id: str, api_url: str) -> None:
        self.store = store
        self.user_id = user_id
        self.api_url = api_url

    def send_email(self, table: TableDef, email_id: str) -> Answer:
        """SendEmail: the email becomes Sent (state Completed); only an open (draft) email can be sent."""
        email = self.store.get(table, email_id)
        if email is None:
            raise not_found("email", email_id)
        if email.get("statecode") != 0:
            raise bad_request("The email has already been sent or canceled.", code="0x8004360d")
        self.store.update(table, email_id, {"statecode": 1, "statuscode": 3, "modifiedon": now_iso()})
        context = f"{self.api_url}$metadata#Microsoft.Dynamics.CRM.SendEmailResponse"
        return Answer(200, {"@odata.context": context, "Subject": email.get("subject")})

    def execute_workflow(self, workflow_id: str, data: Any) -> Answer:
        workflow = self.store.get(by_logical_name("workflow"), workflow_id)  # type: ignore[arg-type]
        if workflow is None:
            raise not_found("workflow", workflow_id)
        entity_id = data.get("EntityId") if isinstance(data, dict) else None
        if not isinstance(entity_id, str) or not GUID.match(entity_id):
            raise bad_request("ExecuteWorkflow needs 'EntityId', the GUID of the row to run the workflow on.")
        primary = by_logical_name(str(workflow.get("primaryentity")))
        if not workflow.get("ondemand") or workflow.get("statecode") != 1 or primary is None:
            raise bad_request("The workflow is not an activated on-demand workflow.", code="0x80045002")
        entity_id = entity_id.lower()
        if self.store.get(primary, entity_id) is None:
            raise not_found(primary.logical_name, entity_id)
        job = str(uuid.uuid4())
        jobs = by_logical_name("asyncoperation")
        assert jobs is not None
        stamp = now_iso()
        self.store.insert(
            jobs,
            {
                "asyncoperationid": job,
                "name": workflow.get("name"),
                "operationtype": 10,
                "statecode": 3,
                "statuscode": 30,
                "primaryentitytype": primary.logical_name,
                "regardingobjectid": entity_id,
                "regardingobjectid__type": primary.logical_name,
                "workflowactivationid": workflow_id,
                "workflowactivationid__type": "workflow",
                "createdon": stamp,
                "modifiedon": stamp,
                "completedon": stamp,
                "ownerid": self.user_id,
                "ownerid__type": "systemuser",
                "createdby": self.user_id,
                "createdby__type": "systemuser",
            },
        )
        context = f"{self.api_url}$metadata#Microsoft.Dynamics.CRM.ExecuteWorkflowResponse"
        return Answer(200, {"@odata.context": context, "Id": job})
