"""Benchmark: the state store's access pattern at a given scale, on SQLite and on the Azure adapter (Azurite).

Synthetic rows shaped like the mirror's (per account: the account, ~10 contacts, ~5 leads, ~200 interactions,
~1.5 opportunities, ~10 stored scores; Dataverse hands them over by id, so in no order of account) go through the
calls the engine makes (`abm.jobs.sync`, `abm.jobs.mirror`, `abm.jobs.loading`, `abm.jobs.pipeline`), phase by
phase, each phase timed on both adapters:

- `full_load`: `clear_mirror`, `clear_agenda`, then per kind chunks of 1,000 rows, each preceded by `mirror_rows` of
  its ids (and of its leads for scores, as placing a score reads its lead);
- `partitions`: `mirror_partitions` of the evaluated kinds, for everything and for shard 0 of 4;
- `batch_reads`: per batch of 250 partitions, `mirror` of the six evaluated kinds, `mirror_rows` of a few related
  accounts and contacts, journey `progress`/`handled` of the batch, and the write-through of the batch's new scores
  (a quarter of its leads get one, kept under a provisional id until Dataverse gives it one); then `save_journey`
  and the effects;
- `agenda_save`: `save_agenda` of every partition (a due moment for some, two or three refs each);
- `tick_changes`: 1 % of the contacts changed and 1 % new interactions, applied as a tick does (`mirror_rows`,
  `dependents`, `mark_due`, `put_mirror`), then `due_partitions` and the batch reads and agenda of those due;
- `idle_tick`: nothing changed but the run's own writes coming back: the new scores, read back with their ids (the
  lead of each, the score by id and by provisional id, then the provisional rows replaced), as `Mirror.apply` does;
  then `due_partitions`, the batch reads and agenda of the few partitions due by time.

Prints one JSON object: per phase the seconds on each adapter and the ratio Azure/SQLite. Azurite (installed under
.tools/ by scripts/test.sh) is started fresh, in memory. Run from the repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/azure_state.py --accounts 2000
"""

# ruff: noqa: S311 (the synthetic tenant is a seeded PRNG's on purpose, as devtools' is)

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from statestore.port import AgendaEntry, MirrorRow, Progress, StateStore

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
AT_ONCE = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK = 1000  # rows per apply, as abm.jobs.sync
BATCH = 250  # partitions per evaluated batch, as abm.jobs.pipeline
EVALUATED = ("account", "contact", "lead", "abm_interaction", "opportunity", "abm_leadscore")
JOURNEY = "welcome"


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Tenant:
    """Rows by kind, in the order Dataverse hands them over (by id), and what the phases need to know."""

    rows: dict[str, list[MirrorRow]] = field(default_factory=dict)
    partitions: list[str] = field(default_factory=list)
    lead_of_score: dict[str, str] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def tenant(accounts: int, seed: int = 1) -> Tenant:
    """Synthetic mirror rows for `accounts` accounts, in `ref`'s proportions."""
    rng = random.Random(seed)
    out = Tenant(rows={kind: [] for kind in EVALUATED})
    moment = "2026-11-01T10:00:00Z"
    for _ in range(accounts):
        account = _id(rng)
        out.partitions.append(account)
        out.rows["account"].append(
            MirrorRow("account", account, account, {"accountid": account, "name": f"Account {account[:8]}",
                                                    "industrycode": rng.randint(1, 30), "revenue": rng.random() * 1e7,
                                                    "_parentaccountid_value": None, "modifiedon": moment})
        )  # fmt: skip
        contacts = [_id(rng) for _ in range(rng.randint(8, 12))]
        for contact in contacts:
            out.rows["contact"].append(
                MirrorRow("contact", contact, account, {"contactid": contact, "fullname": f"Contact {contact[:8]}",
                                                        "emailaddress1": f"{contact[:8]}@example.com",
                                                        "jobtitle": "Engineer", "_parentcustomerid_value": account,
                                                        "donotbulkemail": False, "modifiedon": moment})
            )  # fmt: skip
        for _ in range(rng.randint(180, 220)):
            interaction = _id(rng)
            out.rows["abm_interaction"].append(
                MirrorRow("abm_interaction", interaction, account,
                          {"abm_interactionid": interaction, "_abm_contact_value": rng.choice(contacts),
                           "abm_type": rng.randint(1, 9), "abm_channel": "web", "abm_occurredon": moment,
                           "abm_weight": 1.0, "abm_subject": "Visited the pricing page"})
            )  # fmt: skip
        for _ in range(rng.randint(4, 6)):
            lead = _id(rng)
            out.rows["lead"].append(
                MirrorRow("lead", lead, account, {"leadid": lead, "_parentaccountid_value": account,
                                                  "_parentcontactid_value": rng.choice(contacts), "statecode": 0,
                                                  "subject": "Inbound", "abm_salesready": False})
            )  # fmt: skip
            for model in ("fit", "engagement"):
                score = _id(rng)
                out.lead_of_score[score] = lead
                out.rows["abm_leadscore"].append(
                    MirrorRow("abm_leadscore", score, account, {"abm_leadscoreid": score, "_abm_lead_value": lead,
                                                                "abm_model": model, "abm_score": rng.randint(0, 100)})
                )  # fmt: skip
        for _ in range(rng.choice((1, 1, 2, 2))):
            opportunity = _id(rng)
            out.rows["opportunity"].append(
                MirrorRow("opportunity", opportunity, account, {"opportunityid": opportunity,
                                                                "_parentaccountid_value": account, "statecode": 0})
            )  # fmt: skip
    for rows in out.rows.values():
        rows.sort(key=lambda row: row.id)  # Dataverse's order: by id, not by account
    out.partitions.sort()
    return out


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _apply(store: StateStore, kind: str, rows: Sequence[MirrorRow], data: Tenant) -> None:
    """What `abm.jobs.mirror.Mirror.apply` asks of the store for one chunk."""
    if kind == "abm_leadscore":
        store.mirror_rows("lead", {data.lead_of_score[row.id] for row in rows})
    store.mirror_rows(kind, [row.id for row in rows])
    store.put_mirror(rows)


def full_load(store: StateStore, data: Tenant) -> None:
    store.clear_mirror()
    store.clear_agenda()
    for kind in EVALUATED:
        for chunk in _chunks(data.rows[kind], CHUNK):
            _apply(store, kind, chunk, data)


def partitions(store: StateStore, data: Tenant) -> None:
    listed = store.mirror_partitions(EVALUATED)
    assert listed == data.partitions, (len(listed), len(data.partitions))
    store.mirror_partitions(EVALUATED, [b for b in range(1024) if b % 4 == 0])


def _evaluate(
    store: StateStore, partitions: Sequence[str], rng: random.Random, expect: int | None = None, write: bool = False
) -> int:
    """Batch reads as `abm.jobs.loading.load_batch` makes them, journey progress as `abm.jobs.journeys`, and (with
    `write`) new scores written through as `abm.jobs.mirror.Mirror.write_through`; returns the rows read."""
    read = 0
    for batch in _chunks(sorted(partitions), BATCH):
        rows = {kind: list(store.mirror(kind, batch)) for kind in EVALUATED}
        read += sum(len(found) for found in rows.values())
        contacts = [row.id for row in rows["contact"]]
        store.mirror_rows("account", rng.sample(list(partitions), min(5, len(partitions))))
        store.mirror_rows("contact", rng.sample(contacts, min(5, len(contacts))))
        store.progress(JOURNEY, contacts)
        store.handled(JOURNEY, batch)
        if write:
            scored = [lead.id for lead in rows["lead"] if rng.random() < 0.25]
            leads = store.mirror_rows("lead", scored)
            list(store.mirror("abm_leadscore", {lead.partition for lead in leads.values()}))
            store.put_mirror(
                MirrorRow("abm_leadscore", f"~{lead.id}/intent", lead.partition, _score(lead.id, lead.id, "intent"))
                for lead in leads.values()
            )
    if expect is not None:
        assert read == expect, (read, expect)
    return read


def _score(id: str, lead: str, model: str) -> dict[str, Any]:
    return {"abm_leadscoreid": id, "_abm_lead_value": lead, "abm_model": model, "abm_score": 42}


def batch_reads(store: StateStore, data: Tenant) -> None:
    rng = random.Random(2)
    _evaluate(store, data.partitions, rng, expect=data.count(), write=True)
    contacts = [row.id for row in data.rows["contact"]]
    progress = [Progress(c, "t1", NOW, False, NOW) for c in rng.sample(contacts, len(contacts) // 10)]
    store.save_journey(
        JOURNEY,
        progress,
        [("t1", p) for p in data.partitions[::7]],
        {p: {"t1": {"entered": 1}} for p in data.partitions[::7]},
    )
    keys = [f"{JOURNEY}/t1/{c.contact_id}" for c in progress]
    store.effects_done(keys)
    store.record_effects((key, _id(rng)) for key in keys)


def _refs(data: Tenant, partition: str, rng: random.Random) -> frozenset[str]:
    others = rng.sample(data.partitions, 2)
    return frozenset({f"account:{others[0]}", f"contact:{others[1][:8]}", f"consent:{partition[:8]}@example.com"})


def agenda_save(store: StateStore, data: Tenant) -> None:
    rng = random.Random(3)
    entries = []
    for i, partition in enumerate(data.partitions):
        due = NOW + timedelta(hours=1 + i % 48) if i % 3 else None
        entries.append(AgendaEntry(partition, due, _refs(data, partition, rng)))
    store.save_agenda(entries)


def _tick(store: StateStore, data: Tenant, rng: random.Random, until: datetime) -> int:
    due = store.due_partitions(until)
    _evaluate(store, due, rng)
    store.save_agenda(AgendaEntry(p, until + timedelta(days=2), _refs(data, p, rng)) for p in due)
    return len(due)


def tick_changes(store: StateStore, data: Tenant) -> None:
    rng = random.Random(4)
    contacts = rng.sample(data.rows["contact"], max(1, len(data.rows["contact"]) // 100))
    changed = [MirrorRow(r.kind, r.id, r.partition, {**r.data, "jobtitle": "Director"}) for r in contacts]
    fresh = []
    for _ in range(max(1, len(data.rows["abm_interaction"]) // 100)):
        contact = rng.choice(data.rows["contact"])
        interaction = _id(rng)
        fresh.append(MirrorRow("abm_interaction", interaction, contact.partition,
                               {"abm_interactionid": interaction, "_abm_contact_value": contact.id, "abm_type": 2,
                                "abm_channel": "email", "abm_occurredon": "2026-11-23T07:00:00Z"}))  # fmt: skip
    for kind, rows in (("contact", changed), ("abm_interaction", fresh)):
        for chunk in _chunks(rows, CHUNK):
            before = store.mirror_rows(kind, [row.id for row in chunk])
            if kind == "abm_interaction":
                store.mirror_rows("contact", {row.data["_abm_contact_value"] for row in chunk})
            touched = {row.partition for row in chunk} | {row.partition for row in before.values()}
            refs = {f"{kind}:{row.id}" for row in chunk if kind == "contact"}
            store.mark_due(touched | store.dependents(refs), AT_ONCE)
            store.put_mirror(chunk)
    _tick(store, data, rng, NOW)


def idle_tick(store: StateStore, data: Tenant) -> None:
    rng = random.Random(5)
    written = sorted(
        (row for row in store.mirror("abm_leadscore", data.partitions) if row.id.startswith("~")), key=lambda r: r.id
    )
    back = [(row, _id(rng)) for row in written]  # Dataverse's ids for the scores the run wrote
    for chunk in _chunks(back, CHUNK):
        store.mirror_rows("lead", {row.data["_abm_lead_value"] for row, _ in chunk})
        store.mirror_rows("abm_leadscore", [id for _, id in chunk])
        provisional = store.mirror_rows("abm_leadscore", [row.id for row, _ in chunk])
        store.delete_mirror("abm_leadscore", list(provisional))
        store.put_mirror(
            MirrorRow(row.kind, id, row.partition, {**row.data, "abm_leadscoreid": id}) for row, id in chunk
        )
    _tick(store, data, rng, NOW + timedelta(hours=2))


PHASES: dict[str, Callable[[StateStore, Tenant], None]] = {
    "full_load": full_load,
    "partitions": partitions,
    "batch_reads": batch_reads,
    "agenda_save": agenda_save,
    "tick_changes": tick_changes,
    "idle_tick": idle_tick,
}


def measure(store: StateStore, data: Tenant) -> dict[str, float]:
    timings: dict[str, float] = {}
    for name, phase in PHASES.items():
        started = time.perf_counter()
        phase(store, data)
        timings[name] = round(time.perf_counter() - started, 3)
        print(f"  {name}: {timings[name]} s", file=sys.stderr, flush=True)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--only", choices=("sqlite", "azure"), help="run one adapter only")
    args = parser.parse_args()
    data = tenant(args.accounts)
    print(f"{data.count()} rows in {len(data.partitions)} partitions", file=sys.stderr)
    results: dict[str, dict[str, float]] = {}
    if args.only != "azure":
        from statestore.sqlite import SqliteStateStore  # noqa: PLC0415

        print("sqlite:", file=sys.stderr)
        sqlite = SqliteStateStore()
        results["sqlite"] = measure(sqlite, data)
        sqlite.close()
    if args.only != "sqlite":
        from statestore.azure_tables import AzureStateStore  # noqa: PLC0415
        from tests.azurite import running  # noqa: PLC0415

        print("azure (Azurite):", file=sys.stderr)
        with running() as connection:
            azure = AzureStateStore(connection, prefix="bench")
            results["azure"] = measure(azure, data)
            azure.close()
    report: dict[str, Any] = {"accounts": args.accounts, "rows": data.count(), "seconds": results}
    if len(results) == 2:
        report["ratio_azure_to_sqlite"] = {
            name: round(results["azure"][name] / max(results["sqlite"][name], 0.001), 1) for name in PHASES
        }
        report["total_seconds"] = {name: round(sum(t.values()), 2) for name, t in results.items()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
