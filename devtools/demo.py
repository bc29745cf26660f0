"""`abm demo`: an emulator in-process on a free loopback port, a synthetic tenant, and the main job over real HTTP.

The job runs through the production client exactly as against a real org (requests, retries, paging); only the
base URL and the token differ. With `--db PATH` the data survives, and a database that already holds a tenant is
used as it is, so a second run sees the first run's writes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TextIO

from abm.bootstrap import build_setup
from abm.jobs.pipeline import RunReport
from abm.jobs.sync import read_into_mirror, sync
from abm.settings import Settings
from abm.views.insights import report_data
from abm.views.report import write_report
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.transport import TransportConfig
from devtools.emulator.limits import Faults, GuardConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID, generate, size_from
from statestore.sqlite import SqliteStateStore

__all__ = ["DemoOptions", "demo_client", "load_tenant", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    size: str = "small"
    seed: int = 1
    now: datetime | None = None
    db: str | None = None
    faults: str | None = None
    report: str | None = "abm-report.html"  # where the HTML insights report goes (None: no report)


def load_tenant(store: Store, size: str, *, seed: int, now: datetime, progress: TextIO | None = None) -> int:
    """Fill an empty store with the synthetic tenant in bulk (one insert batch per chunk); returns rows loaded."""
    loaded = 0
    live = progress is not None and progress.isatty()
    for logical_name, rows in generate(size_from(size), seed=seed, now=now):
        store.insert_many(TABLES[logical_name], rows)
        loaded += len(rows)
        if live:
            print(f"\rloading the synthetic tenant: {loaded:,} rows", end="", file=progress, flush=True)
    if progress is not None:
        print(
            f"{chr(13) if live else ''}loaded the synthetic tenant (size {size}, seed {seed}): {loaded:,} rows",
            file=progress,
        )
    return loaded


@contextmanager
def demo_client(db: str) -> Iterator[DataverseClient]:
    """A client of an emulator serving an existing demo database (for `abm score --db`)."""
    store = Store(db)
    try:
        with (
            Emulator(store, EmulatorIdentity(CALLER_USER_ID)) as emulator,
            DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth()) as client,
        ):
            yield client
    finally:
        store.close()


def run_demo(options: DemoOptions, *, now: datetime, progress: TextIO | None = None) -> RunReport:
    """Start the emulator, load the tenant unless the database holds one, run the main job, stop.
    Progress goes to `progress` (default: stderr at call time)."""
    progress = progress or sys.stderr
    # The demo's tenant speaks the default consent values, whatever the org's are: the definitions with defaults.
    setup = build_setup(Settings.from_env({}))
    state = SqliteStateStore(f"{options.db}.state" if options.db else None)
    store = Store(options.db)
    try:
        if store.count(TABLES["systemuser"]) == 0:
            load_tenant(store, options.size, seed=options.seed, now=now, progress=progress)
        else:
            print(f"using the tenant already in {options.db}", file=progress)
        guard = GuardConfig(faults=Faults.parse(options.faults))
        with Emulator(store, EmulatorIdentity(CALLER_USER_ID), guard=guard) as emulator:
            config = TransportConfig(org_url=emulator.org_url, backoff_initial=0.05, backoff_max=1.0)
            with DataverseClient(config, NoAuth()) as client:
                # The main job: a full sync (its timings left out: the demo prints the same for the same inputs).
                report = replace(sync(client, state, setup, now=now, full=True), seconds={})
                if options.report is None:
                    return report
                # The run's own writes (scores, sales-ready flags, leads) reach the mirror as the next timer run
                # would bring them; these reads come after the job's, so they are not in its request count.
                state.save_checkpoints(read_into_mirror(client, state, setup).checkpoints)
                path = write_report(options.report, report_data(state, setup, now))
                return replace(report, report=str(path))
    finally:
        state.close()
        store.close()
