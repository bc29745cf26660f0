"""Benchmark: Dataverse requests of a full and of an incremental sync beside their lower bound, and the time from a
webhook to the rewritten score.

Loads the synthetic tenant into an in-memory emulator (not counted), runs a full sync, changes some rows in
Dataverse (contacts' job titles, new interactions), runs an incremental sync, then delivers one webhook for a
changed contact and times receiving plus processing it (the queue hop is left out: it is the host's). The lower
bound of a run is the 5,000-row pages its reads need plus the 1,000-row bulk requests its writes need (workflow
starts: $batch requests of 100, ExecuteWorkflow having no bulk message). Prints one JSON object. Run:

    PYTHONPATH=. .venv/bin/python benchmarks/sync_ref.py --size ref
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from abm.bootstrap import build_setup
from abm.jobs.events import process_event, receive_webhook
from abm.jobs.mirror import KINDS, mirror_queries
from abm.jobs.sync import sync
from abm.settings import Settings
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from dataverse.query import Query
from dataverse.tables import table
from dataverse.transport import TransportConfig
from devtools.demo import load_tenant
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID
from statestore.sqlite import SqliteStateStore
from tests.runtime_support import webhook_body

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def lower_bound(read_rows: dict[str, int], writes: dict[str, dict[str, int]], checked_tables: int = 0) -> int:
    """Pages the reads need plus bulk requests the writes need, plus the definitions check's reads when the run
    made them (one table definition per table the definitions name, once per definitions)."""
    pages = sum(max(1, math.ceil(n / 5000)) for n in read_rows.values()) + checked_tables
    bulk = 0
    for table_name, counts in writes.items():
        for kind, n in counts.items():
            size = 100 if table_name == "workflows" else 1000
            if kind != "sent":
                bulk += math.ceil(n / size)
    return pages + bulk


def run(store: SqliteStateStore, emulator: Emulator, *, now: datetime) -> tuple[dict[str, Any], float]:
    client = DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth())
    started = time.perf_counter()
    report = sync(client, store, build_setup(Settings.from_env({})), now=now)
    return report.as_dict(), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="ref")
    parser.add_argument("--changed-contacts", type=int, default=200)
    parser.add_argument("--new-interactions", type=int, default=1000)
    args = parser.parse_args()
    data = Store()
    load_tenant(data, args.size, seed=1, now=NOW)
    state = SqliteStateStore()
    with Emulator(data, EmulatorIdentity(CALLER_USER_ID)) as emulator:
        full, full_seconds = run(state, emulator, now=NOW)
        read = mirror_queries(MappingConfig())  # the tables a sync reads with the default settings
        full_rows = {kind: sum(1 for _ in state.mirror(kind)) for kind in KINDS if kind in read}
        editor = DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth())
        contacts = [r.id for r in state.mirror("contact")][: args.changed_contacts]
        editor.update_multiple(table("contact"), [{"contactid": c, "jobtitle": "Head of Buying"} for c in contacts])
        editor.create_multiple(
            table("abm_interaction"),
            [
                {
                    "abm_contactid@odata.bind": f"/contacts({contacts[i % len(contacts)]})",
                    "abm_type": "FormSubmitted",
                    "abm_occurredon": NOW - timedelta(hours=i % 48),
                }
                for i in range(args.new_interactions)
            ],
        )
        later = NOW + timedelta(minutes=15)
        incremental, incremental_seconds = run(state, emulator, now=later)
        changed = {"contact": len(contacts), "abm_interaction": args.new_interactions}
        incremental_reads = {kind: changed.get(kind, 0) for kind in KINDS if kind in full_rows}

        contact = contacts[-1]
        editor.update(table("contact"), uuid.UUID(contact), {"jobtitle": "CEO"})
        client = DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth())
        body = webhook_body("Update", "contact", contact, str(uuid.uuid4()))
        started = time.perf_counter()
        receipt = receive_webhook(state, body, {}, now=later)
        assert receipt.event_id is not None
        received = time.perf_counter() - started
        report = process_event(client, state, build_setup(Settings.from_env({})), receipt.event_id, now=later)
        webhook_seconds = time.perf_counter() - started
        scores = Query(table("abm_leadscore").entity_set).select("abm_leadscoreid")
        total_scores = sum(1 for _ in editor.iter_rows(scores))
    print(
        json.dumps(
            {
                "size": args.size,
                "full": {
                    "seconds": round(full_seconds, 1),
                    "requests": full["requests"]["total"],
                    "lower_bound": lower_bound(
                        full_rows, full["writes"], full["requests"]["by_table"].get("EntityDefinitions", 0)
                    ),
                    "by_table": full["requests"]["by_table"],
                    "rows_read": full_rows,
                    "writes": full["writes"],
                },
                "incremental": {
                    "changed": changed,
                    "seconds": round(incremental_seconds, 1),
                    "requests": incremental["requests"]["total"],
                    "lower_bound": lower_bound(incremental_reads, incremental["writes"]),
                    "writes": incremental["writes"],
                },
                "webhook": {
                    "answer_ms": round(received * 1000, 1),
                    "to_rewritten_score_ms": round(webhook_seconds * 1000, 1),
                    "requests": report.requests["total"] if report else None,
                    "writes": report.writes if report else None,
                    "scores_in_org": total_scores,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
