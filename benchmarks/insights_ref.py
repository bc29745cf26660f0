"""Benchmark: how long the insights take on a mirror of the `ref` tenant, and the memory they need.

Loads the synthetic tenant into an in-memory emulator and runs a full sync of the demo definitions into a SQLite
state store on disk (not counted: it fills the mirror and the insights' timeline, and finds leads sales-ready, so
flows ending with MarketingQualified have paths), then times each insights call as the HTTP functions make it: one
account's KPIs (its partition and events), a whole-tenant cohort table, flow and journey path (each reading the
timeline), and the HTML report. Prints one JSON object with seconds per call and the peak RSS. Run:

    PYTHONPATH=. .venv/bin/python benchmarks/insights_ref.py --size ref
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abm.bootstrap import build_setup
from abm.jobs.sync import sync
from abm.settings import Settings
from abm.views.insights import account_insights, cohorts, flows, paths, report_data
from abm.views.report import write_report
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.transport import TransportConfig
from devtools.demo import load_tenant
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID
from statestore.sqlite import SqliteStateStore

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, round(time.perf_counter() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="ref")
    args = parser.parse_args()
    setup = build_setup(Settings.from_env({}))
    with tempfile.TemporaryDirectory() as scratch:
        state = SqliteStateStore(str(Path(scratch) / "state.sqlite"))
        source = Store()
        load_tenant(source, args.size, seed=1, now=NOW)
        with (
            Emulator(source, EmulatorIdentity(CALLER_USER_ID)) as emulator,
            DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth()) as client,
        ):
            report, fill = timed(lambda: sync(client, state, setup, now=NOW, full=True))
        source.close()
        account = next(iter(state.mirror("account"))).id
        cohort = {"include": "OpportunityCreated", "return": "OpportunityWon", "container": "opportunity"}
        anchored = {"ends_with": "MarketingQualified", "dimension": "content_type"}
        calls: dict[str, Callable[[], Any]] = {
            "account": lambda: account_insights(state, setup, account, {}, NOW),
            "cohorts": lambda: cohorts(state, setup, cohort, NOW),
            "flows": lambda: flows(state, setup, anchored, NOW),
            "paths": lambda: paths(state, setup, {"steps": "FormSubmitted,LeadCreated,OpportunityCreated"}, NOW),
            "report": lambda: write_report(Path(scratch) / "report.html", report_data(state, setup, NOW)),
        }
        seconds = {name: timed(call)[1] for name, call in calls.items()}
        events, flagged = len(state.timeline()), sum(m["sales_ready"] for m in report.scoring["models"].values())
        state.close()
    print(
        json.dumps(
            {
                "size": args.size,
                "mirrored_rows": report.sync["changes"],
                "fill_seconds": round(fill, 1),
                "events": events,
                "sales_ready": flagged,
                "seconds": seconds,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
