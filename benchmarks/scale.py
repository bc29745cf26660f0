"""Benchmark (issue 15's baseline): a run as a user runs it, the emulator and the engine in separate processes.

`abm emulator --size S --db FILE` serves the synthetic tenant from its own process; `abm sync --json` runs in
another, under `/usr/bin/time -v` (peak RSS, wall time), against a state store of its own (`--state sqlite`: a file;
`--state azure`: Table Storage on Azurite, installed under .tools/ by scripts/test.sh). Three runs, each a separate
`abm sync` process:

1. the full sync (first run: an empty state store);
2. an idle tick (nothing changed but what the first run wrote itself, which comes back through change tracking);
3. a tick after 1 % of the contacts changed (job title) and 1 % new interactions were created.

With `--shards N`, two more full syncs on fresh state stores over the same tenant: one unsharded and one fanned out
over N shards (run one after the other in the `abm sync` process, as the command does without a queue), to compare
each shard's evaluation with the unsharded one. A read-only pass (every mirrored table read with change tracking,
the rows dropped, in a process of its own) gives the paging floor a full sync is compared with.

Prints one JSON object: per run the wall time, the peak RSS, the requests, the writes and the run's own timings
(`seconds`, from its report), and the ratios (taken within this one invocation). Run from the repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py --size ref --state sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.query import Query
from dataverse.tables import table
from dataverse.transport import TransportConfig

ROOT = Path(__file__).resolve().parent.parent
ABM = ROOT / ".venv" / "bin" / "abm"
LISTENING = re.compile(r"listening on (http://\S+)/api/data/v9\.2/")


@contextmanager
def emulator(size: str, db: Path, now: datetime) -> Iterator[str]:
    """`abm emulator` in its own process; yields the org URL once it listens."""
    args = [str(ABM), "emulator", "--size", size, "--seed", "1", "--now", now.isoformat(), "--db", str(db)]
    process = subprocess.Popen(  # noqa: S603 (our own console script, fixed arguments)
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            found = LISTENING.search(line)
            if found:
                yield found.group(1)
                return
        raise RuntimeError(f"the emulator exited with {process.wait()} before listening")
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def state_settings(kind: str, work: Path) -> Iterator[dict[str, str]]:
    """The environment of a state store: a SQLite file, or Azure Table Storage on a fresh Azurite."""
    if kind == "sqlite":
        yield {"ABM_STATE_STORE": "sqlite", "ABM_SQLITE_PATH": str(work / "state.sqlite")}
        return
    sys.path.insert(0, str(ROOT))
    from tests.azurite import running  # noqa: PLC0415 (only for --state azure)

    with running() as connection:
        yield {"ABM_STATE_STORE": "azure", "AzureWebJobsStorage": connection}


def timed_sync(env: dict[str, str], command: list[str] | None = None) -> dict[str, Any]:
    """One `abm sync --json` (or `command`, printing the same report's fields) under /usr/bin/time -v: its report,
    wall seconds and peak RSS."""
    done = subprocess.run(  # noqa: S603 (our own console script, fixed arguments)
        ["/usr/bin/time", "-v", *(command or [str(ABM), "sync", "--json"])],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"abm sync failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", done.stderr).group(1)  # type: ignore[union-attr]
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(wall.split(":"))))
    return {
        "wall_seconds": round(seconds, 1),
        "peak_rss_mb": round(rss / 1024),
        "requests": report["requests"]["total"],
        "mode": report.get("sync", {}).get("mode"),
        "evaluated": report.get("sync", {}).get("evaluated", "all"),
        "seconds": report.get("seconds", {}),
        "shards": [shard["seconds"] for shard in report.get("shards", [])],
        "writes": report["writes"],
    }


def change_one_percent(org_url: str, now: datetime) -> dict[str, int]:
    """1 % of the contacts get a new job title; as many interactions as 1 % of the interactions are created."""
    client = DataverseClient(TransportConfig(org_url=org_url), NoAuth())
    contacts = [str(r["contactid"]) for r in client.iter_rows(Query("contacts").select("contactid"))]
    interactions = sum(1 for _ in client.iter_rows(Query("abm_interactions").select("abm_interactionid")))
    changed = contacts[: max(1, len(contacts) // 100)]
    client.update_multiple(table("contact"), [{"contactid": c, "jobtitle": "Head of Buying"} for c in changed])
    new = max(1, interactions // 100)
    client.create_multiple(
        table("abm_interaction"),
        [
            {
                "abm_contactid@odata.bind": f"/contacts({changed[i % len(changed)]})",
                "abm_type": "FormSubmitted",
                "abm_occurredon": now - timedelta(hours=i % 48),
            }
            for i in range(new)
        ],
    )
    return {"contacts": len(changed), "interactions": new}


def read_only_pass() -> None:
    """Every mirrored table read as a full sync reads it (change tracking, 5,000-row pages), rows dropped: prints a
    report shaped like `abm sync --json`'s for `timed_sync`."""
    from abm.bootstrap import build_runtime  # noqa: PLC0415 (the pass runs in its own process)
    from abm.jobs.mirror import mirror_queries  # noqa: PLC0415
    from abm.settings import Settings  # noqa: PLC0415
    from dataverse.mapping import read_annotations  # noqa: PLC0415

    started = time.perf_counter()
    runtime = build_runtime(Settings.from_env(dict(os.environ)))
    setup = runtime.setup
    rows = 0
    for kind, query in mirror_queries(setup.config, setup.models, setup.segments, setup.journeys).items():
        rows += sum(1 for _ in runtime.client.read_changes(query, annotations=read_annotations(kind)))
    seconds = {"total": round(time.perf_counter() - started, 3)}
    print(json.dumps({"requests": runtime.client.stats.as_dict(), "writes": {}, "rows": rows, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="ref", help="none | small | ref | a number of accounts")
    parser.add_argument("--state", choices=("sqlite", "azure"), default="sqlite")
    parser.add_argument("--shards", type=int, default=0, help="also compare a full sync over N shards")
    parser.add_argument("--read-only-pass", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_only_pass:
        read_only_pass()
        return
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory(prefix="abm-scale-") as tmp:
        work = Path(tmp)
        with emulator(args.size, work / "org.sqlite", now) as org, state_settings(args.state, work) as state:
            env = {"DATAVERSE_URL": org, "DATAVERSE_AUTH": "none", **state}
            paging = timed_sync(env, [sys.executable, str(Path(__file__).resolve()), "--read-only-pass"])
            full = timed_sync(env)
            idle = timed_sync(env)
            changed = change_one_percent(org, now)
            tick = timed_sync(env)
            sharded: dict[str, Any] = {}
            if args.shards > 1:
                sharded = compare_shards(env, work, args.shards)
    result = {
        "size": args.size,
        "state": args.state,
        "read_only_pass": paging,
        "full": full,
        "idle_tick": idle,
        "change_tick": {**tick, "changed": changed},
        "idle_over_full": round(idle["seconds"]["total"] / full["seconds"]["total"], 3),
        "change_over_full": round(tick["seconds"]["total"] / full["seconds"]["total"], 3),
        "full_over_paging": round(full["seconds"]["total"] / paging["seconds"]["total"], 2),
        **sharded,
    }
    print(json.dumps(result, indent=2))


def compare_shards(env: dict[str, str], work: Path, shards: int) -> dict[str, Any]:
    """A full sync unsharded and one over `shards`, each on a fresh SQLite state store over the same tenant: each
    shard's evaluation against the unsharded one's."""
    whole = timed_sync({**env, "ABM_STATE_STORE": "sqlite", "ABM_SQLITE_PATH": str(work / "whole.sqlite")})
    parts = timed_sync(
        {**env, "ABM_STATE_STORE": "sqlite", "ABM_SQLITE_PATH": str(work / "parts.sqlite"), "ABM_SHARDS": str(shards)}
    )
    unsharded = whole["seconds"]["evaluate"]
    return {
        "unsharded": whole,
        "sharded": parts,
        "shard_over_unsharded": [round(s["evaluate"] / unsharded, 3) for s in parts["shards"]],
    }


if __name__ == "__main__":
    main()
