"""The timer sync (schedule from the app setting ABM_SYNC_SCHEDULE) and the queue workers of a fanned-out run.

With ABM_SHARDS > 1 the timer reads the changes and enqueues one message per account shard; each shard worker
evaluates its accounts, and the one that finishes the last shard saves the run's delta links (abm/jobs/sync.py). A
shard that still fails after the host's retries becomes a dead letter, which `abm replay` runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import azure.functions as func

from abm.bootstrap import shared_runtime
from abm.jobs.sync import ShardMessage, run_shard, store_dead_shard, sync
from function_app.queues import CONNECTION, POISON, SHARDS, without_row_values

bp = func.Blueprint()
log = logging.getLogger("abm.functions")


@bp.function_name("sync")
@bp.timer_trigger(arg_name="timer", schedule="%ABM_SYNC_SCHEDULE%", run_on_startup=False, use_monitor=True)
@bp.queue_output(arg_name="shards", queue_name=SHARDS, connection=CONNECTION)
def scheduled_sync(timer: func.TimerRequest, shards: func.Out[list[str]]) -> None:
    runtime = shared_runtime()
    if timer.past_due:
        log.info("sync is past due: running now")

    def enqueue(messages: Sequence[str]) -> None:
        shards.set(list(messages))

    with without_row_values("sync"):
        report = sync(
            runtime.client,
            runtime.store,
            runtime.setup,
            now=datetime.now(UTC),
            shards=runtime.settings.shards,
            enqueue=enqueue,
        )
    log.info("sync: %s; writes %s; requests %s", report.sync, report.writes, report.requests.get("total"))
    if report.failures:
        log.warning("sync went on past writes that failed (due again next run): %s", report.failures)


@bp.function_name("sync_shard")
@bp.queue_trigger(arg_name="message", queue_name=SHARDS, connection=CONNECTION)
def sync_shard(message: func.QueueMessage) -> None:
    runtime = shared_runtime()
    shard = ShardMessage.from_json(message.get_body())
    with without_row_values(f"shard {shard.shard} of run {shard.run_id}"):
        report = run_shard(runtime.client, runtime.store, runtime.setup, shard)
    log.info("shard %s/%s of run %s: writes %s", shard.shard, shard.shards, shard.run_id, report.writes)
    if report.failures:
        log.warning(
            "shard %s of run %s went on past writes that failed: %s", shard.shard, shard.run_id, report.failures
        )


@bp.function_name("dead_letter_shard")
@bp.queue_trigger(arg_name="message", queue_name=SHARDS + POISON, connection=CONNECTION)
def dead_letter_shard(message: func.QueueMessage) -> None:
    attempts = int(message.dequeue_count or 0)
    shard = store_dead_shard(shared_runtime().store, message.get_body(), attempts=attempts, now=datetime.now(UTC))
    log.warning("shard %s of run %s failed after its retries: stored as a dead letter", shard.shard, shard.run_id)
