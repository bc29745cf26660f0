"""`POST /api/dataverse/webhook` (function key; Dataverse's WebhookKey authentication sends it as `?code=`) and the
queue worker that processes what it stored.

The HTTP function only checks, deduplicates and stores the delivery and puts its id on the events queue, so
Dataverse gets its answer in milliseconds (its limit is 60 s). The queue worker re-reads the row and evaluates the
accounts it touches; the host retries a failing message (host.json `maxDequeueCount`), then moves it to the poison
queue, whose worker turns the event into a dead letter.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.functions as func

from abm.bootstrap import shared_runtime
from abm.jobs.events import dead_letter_event, process_event, receive_webhook
from function_app.queues import CONNECTION, EVENTS, POISON, without_row_values
from function_app.responses import answers_errors, json_response

bp = func.Blueprint()
log = logging.getLogger("abm.functions")


@bp.function_name("dataverse_webhook")
@bp.route(route="dataverse/webhook", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.queue_output(arg_name="events", queue_name=EVENTS, connection=CONNECTION)
@answers_errors
def dataverse_webhook(req: func.HttpRequest, events: func.Out[str]) -> func.HttpResponse:
    runtime = shared_runtime()
    receipt = receive_webhook(runtime.store, req.get_body(), dict(req.headers), now=datetime.now(UTC))
    if receipt.queued and receipt.event_id:
        events.set(receipt.event_id)
    return json_response(receipt.as_dict(), 202 if receipt.queued else 200)


@bp.function_name("process_event")
@bp.queue_trigger(arg_name="message", queue_name=EVENTS, connection=CONNECTION)
def process_event_message(message: func.QueueMessage) -> None:
    runtime = shared_runtime()
    event_id = message.get_body().decode()
    with without_row_values(f"event {event_id}"):
        report = process_event(runtime.client, runtime.store, runtime.setup, event_id, now=datetime.now(UTC))
    if report is not None:
        log.info("event %s processed: writes %s", event_id, report.writes)


@bp.function_name("dead_letter_event")
@bp.queue_trigger(arg_name="message", queue_name=EVENTS + POISON, connection=CONNECTION)
def dead_letter_event_message(message: func.QueueMessage) -> None:
    event_id = message.get_body().decode()
    dead_letter_event(shared_runtime().store, event_id, now=datetime.now(UTC))
    log.warning("event %s failed after its retries: stored as a dead letter", event_id)
