"""Benchmark: the main job on the `ref` tenant through the emulator, phase by phase.

Loads the synthetic tenant into an in-memory emulator (not timed as part of the job), then times reading and
mapping (`abm.jobs.sync.read_into_mirror`, then `abm.jobs.mirror.Mirror.load`), scoring (`scoring.engine.score_run`) and
writing back (`abm.jobs.scoring.write_scores`) on their own, and a second write-back that must send nothing.
Prints one JSON object. Run:

    .venv/bin/python benchmarks/main_job_ref.py --size ref
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import UTC, datetime

from abm.bootstrap import mapping_config, scoring_models
from abm.jobs.mirror import load_snapshot
from abm.jobs.pipeline import RunSetup
from abm.jobs.scoring import write_scores
from abm.jobs.sync import read_into_mirror
from abm.settings import Settings
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.transport import TransportConfig
from devtools.demo import load_tenant
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID
from scoring.engine import score_run
from statestore.sqlite import SqliteStateStore

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="ref")
    args = parser.parse_args()
    defaults = Settings.from_env({})
    models, config = scoring_models(defaults), mapping_config(defaults)
    store = Store()
    started = time.perf_counter()
    load_tenant(store, args.size, seed=1, now=NOW)
    load_seconds = time.perf_counter() - started
    timings: dict[str, float] = {}
    with Emulator(store, EmulatorIdentity(CALLER_USER_ID)) as emulator:
        client = DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth())
        started = time.perf_counter()
        state = SqliteStateStore()
        read_into_mirror(client, state, RunSetup(models=models, config=config))
        snapshot = load_snapshot(state, config)
        timings["read_and_map"] = time.perf_counter() - started
        started = time.perf_counter()
        run = score_run(models, snapshot.leads, snapshot.contacts, snapshot.accounts, snapshot.interactions, now=NOW)
        timings["score"] = time.perf_counter() - started
        started = time.perf_counter()
        first = write_scores(client, run, snapshot.leads, now=NOW)
        timings["write_back"] = time.perf_counter() - started
        again = write_scores(client, run, snapshot.leads, now=NOW)
    print(
        json.dumps(
            {
                "size": args.size,
                "rows": snapshot.counts(),
                "load_tenant_seconds": round(load_seconds, 2),
                **{f"{k}_seconds": round(v, 2) for k, v in timings.items()},
                "leads_per_second_scoring": int(len(snapshot.leads) / timings["score"]),
                "scores_upserted": first.upserted,
                "leads_flagged": first.leads_flagged,
                "second_write_upserted": again.upserted,
                "requests": client.stats.as_dict()["total"],
                "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
