"""The agenda's equivalence test: a run over the partitions a change touched and those whose due moment has come
leaves Dataverse and the state store as a run over every partition does.

Two emulators hold the same small synthetic tenant. Tenant A is driven by the timer's `sync` (the agenda decides
which partitions to evaluate), tenant B by `sync(..., evaluate_all=True)` (the reference). A seeded random walk moves
one clock for both (the runs' `now`, the emulators' `createdon`/`modifiedon`, the state stores' claims), makes the
same changes in both through the Web API (job titles, consent, a contact moving to another account or deleted, new
contacts and leads, interactions in the past, now and in the future, account attributes, a definition change and
back), runs both syncs and compares what the engine left behind after every step: the rows it writes in Dataverse,
the journeys' progress, handled pairs, tile counts, recorded effects and workflow intents, and the mirror (write
timestamps, etags, score row ids, workflow system job ids, the checkpoints and the agenda aside).

The definitions are the test's own, with every way time alone changes an outcome: journey waits, a trigger on a
recent click that expires, an account-based trigger, scoring rules with windows of a few days (contact-targeted,
account-targeted strict and all-contacts), and rules that read a record in another partition (a lead's contact in
another account, a parent account). The interactions the journeys' triggers wait for are ones no scoring rule
counts, so that a journey's due moment is never covered by a score's. Besides random changes, the walk probes: a
future-dated interaction in a partition with nothing else due soon, then a quiet step landing just after it; a
change to a record another partition reads, an hour after the step before.

The walk records the partitions A evaluated only because their due moment had come (no change touched them) or only
because a record they read elsewhere changed, and what that changed; each seed must see every kind do something.
Two more tests check that the walk catches an agenda that forgets due moments or reads across partitions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random
from typing import Any

import pytest

from abm.jobs.mirror import AT_ONCE, EVALUATED
from abm.jobs.pipeline import RunReport, RunSetup
from abm.jobs.sync import sync
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from dataverse.query import Query
from dataverse.rows import InteractionWrite, bind, interaction_row
from dataverse.tables import table
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID, REFERENCE_WORKFLOWS, TenantSize, generate
from journeys.model import parse_journey
from journeys.segments import parse_segment
from scoring.model import parse_model
from statestore.port import iso_micro
from statestore.sqlite import SqliteStateStore
from tests.emulator.conftest import CALLER, CONTOSO, FABRIKAM, OBRIEN, REP, STAMP
from tests.runtime_support import NOW, Clock, demo_setup, fresh_client, mirror_contents

SEEDS = (1, 2, 3, 4, 5, 6, 7)
STEPS = 26  # after the first (full) sync
SIZE = TenantSize(accounts=5, leads=20, interactions=400, opportunities=3, contacts_per_account=(4, 8))
NOTIFY_OWNER = next(id for id, _, entity in REFERENCE_WORKFLOWS if entity == "account")
CONSENT = 587030000  # + level 0..5: the synthetic tenant's consent option values

# ---- the definitions --------------------------------------------------------------------------------------------

BUYERS = {
    "name": "buyers",
    "type": "dynamic",
    "contact": {
        "any": [
            {"column": "jobtitle", "op": "contains", "value": "purchas"},
            {"column": "jobtitle", "op": "startswith", "value": "Head"},
            {"column": "jobtitle", "op": "in", "value": ["CEO", "CFO"]},
        ]
    },
    "account": {"all": [{"column": "numberofemployees", "op": "ge", "value": 5000}]},
    "combine": "any",
}
STAFFED = {
    "name": "staffed-accounts",
    "type": "dynamic",
    "account": {"all": [{"column": "numberofemployees", "op": "ge", "value": 1}]},
    "contact": {"all": [{"column": "jobtitle", "op": "is_not_null"}]},
    "combine": "all",
}


def nurture(wait_days: float, version: int) -> dict[str, Any]:
    """Contact-based: an email, a wait, a task, then a trigger on a recent click that expires (a lead, or a nudge)."""
    return {
        "name": "nurture",
        "version": version,
        "status": "live",
        "target": "contact",
        "minimum_consent": 3,
        "owner": CALLER_USER_ID,
        "segment": "buyers",
        "start": "hello",
        "tiles": [
            {
                "id": "hello",
                "type": "email",
                "subject": "Hello {{contact.firstname}}",
                "template": "<p>Hi {{contact.firstname}}</p>",
                "next": "pause",
            },
            {"id": "pause", "type": "wait", "days": wait_days, "next": "check"},
            {"id": "check", "type": "activity", "activity": "task", "subject": "Check in: {{contact.fullname}}",
             "next": "clicked"},
            {
                "id": "clicked",
                "type": "trigger",
                "condition": {"interaction": "EmailClicked", "within_days": 3},
                "expires_after_days": 4,
                "true": "win",
                "false": "nudge",
            },
            {"id": "win", "type": "create_lead", "subject": "Clicked: {{contact.fullname}}", "next": None},
            {"id": "nudge", "type": "activity", "activity": "appointment", "subject": "Nudge {{contact.fullname}}",
             "next": None},
        ],
    }  # fmt: skip


ABM = {
    "name": "abm",
    "version": 1,
    "status": "live",
    "target": "account",
    "minimum_consent": 2,
    "owner": CALLER_USER_ID,
    "segment": "staffed-accounts",
    "start": "engaged",
    "tiles": [
        {
            "id": "engaged",
            "type": "trigger",
            "based_on": "account",
            "account_rule": "any",
            "condition": {
                "interaction": "EventRegistered",
                "within_days": 5,
                "where": [{"field": "content_type", "op": "eq", "value": "webinar"}],
            },
            "expires_after_days": 3,
            "true": "call",
            "false": "mail",
        },
        {
            "id": "call",
            "type": "activity",
            "activity": "phonecall",
            "for_each": "account",
            "assigned_to": "account_owner",
            "regarding": "account",
            "subject": "Call {{contact.contact_account_parentcustomerid.name}}",
            "next": "hold",
        },
        {"id": "hold", "type": "wait", "days": 1.5, "next": "deal"},
        {"id": "deal", "type": "create_lead", "for_each": "account",
         "subject": "ABM: {{contact.contact_account_parentcustomerid.name}}", "next": None},
        {
            "id": "mail",
            "type": "email",
            "subject": "News for {{contact.contact_account_parentcustomerid.name}}",
            "template": "<p>Dear {{contact.firstname}}</p>",
            "next": "again",
        },
        {"id": "again", "type": "wait", "days": 2, "next": "flow"},
        {"id": "flow", "type": "launch_workflow", "workflow": NOTIFY_OWNER, "for_each": "account", "next": None},
    ],
}  # fmt: skip

GRADES = [{"name": "D", "from": -1000, "to": 4}, {"name": "C", "from": 5, "to": 14}, {"name": "B", "from": 15}]


def contact_score(opens: int, version: int) -> dict[str, Any]:
    """Contact-targeted, windows of a few days; paths through the lead's contact (and on to its account), which
    may sit in another partition than the lead."""
    return {
        "name": "c-score",
        "version": version,
        "status": "live",
        "target": "contact",
        "minimum_consent": 2,
        "sales_ready_score": 15,
        "grades": GRADES,
        "rules": [
            {"name": "opens", "points": opens,
             "when": [[{"interaction": "EmailOpened", "frequency": "each", "within_days": 3}]]},
            {"name": "pricing", "points": 10, "when": [[{"interaction": "WebsiteVisited", "frequency": "at_least_once",
             "within_days": 2, "where": [{"field": "content_type", "op": "eq", "value": "pricing page"}]}]]},
            {"name": "quiet", "points": -4,
             "when": [[{"interaction": "FormSubmitted", "frequency": "none", "within_days": 4}]]},
            {"name": "head", "points": 7,
             "when": [[{"attribute": "lead.parentcontactid.jobtitle", "op": "startswith", "value": "Head"}]]},
            {"name": "big-company", "points": 5, "when": [[{"attribute":
             "lead.parentcontactid.parentcustomerid.numberofemployees", "op": "ge", "value": 250}]]},
        ],
    }  # fmt: skip


ACCOUNT_SCORE = {
    "name": "a-score",
    "version": 1,
    "status": "live",
    "target": "account",
    "minimum_consent": 2,
    "consent_mode": "strict",
    "sales_ready_score": 20,
    "grades": GRADES,
    "rules": [
        {"name": "events", "points": 4, "when": [[{"interaction": "EventRegistered", "frequency": "each",
         "within_days": 5, "where": [{"field": "content_type", "op": "eq", "value": "event"}]}]]},
        {"name": "visits", "points": 6,
         "when": [[{"interaction": "WebsiteVisited", "frequency": "at_least_once", "within_days": 2}]]},
        {"name": "forms", "points": 2,
         "when": [[{"interaction": "FormSubmitted", "frequency": "each", "within_days": 4}]]},
        {"name": "size", "points": 10,
         "when": [[{"attribute": "lead.parentaccountid.numberofemployees", "op": "ge", "value": 250}]]},
        {"name": "group", "points": 5, "when": [[{"attribute": "lead.parentaccountid.parentaccountid.address1_city",
         "op": "eq", "value": "Amsterdam"}]]},
    ],
}  # fmt: skip

ACCOUNT_REACH = {
    "name": "a-reach",
    "version": 1,
    "status": "live",
    "target": "account",
    "minimum_consent": 4,
    "consent_mode": "all_contacts",
    "sales_ready_score": 30,
    "grades": GRADES,
    "rules": [
        {"name": "any-forms", "points": 3,
         "when": [[{"interaction": "FormSubmitted", "frequency": "each", "within_days": 3}]]},
        {"name": "blog", "points": 4, "when": [[{"interaction": "WebsiteVisited", "frequency": "at_least_once",
         "within_days": 2, "where": [{"field": "content_type", "op": "eq", "value": "blog"}]}]]},
        {"name": "silent", "points": -2,
         "when": [[{"interaction": "EmailOpened", "frequency": "none", "within_days": 5}]]},
    ],
}  # fmt: skip

# The rules that count interactions, by (model, rule): their frequency, to read a score's explanation.
BEHAVIOUR_RULES = {
    ("c-score", "opens"): "each",
    ("c-score", "pricing"): "at_least_once",
    ("c-score", "quiet"): "none",
    ("a-score", "events"): "each",
    ("a-score", "visits"): "at_least_once",
    ("a-score", "forms"): "each",
    ("a-reach", "any-forms"): "each",
    ("a-reach", "blog"): "at_least_once",
    ("a-reach", "silent"): "none",
}
WAITS = {("nurture", "pause"), ("abm", "hold"), ("abm", "again")}  # (journey, tile)
TRIGGERS = {("nurture", "clicked"), ("abm", "engaged")}


def definitions(variant: int) -> RunSetup:
    """The test's definitions (variant 1: other points for e-mail opens and a shorter wait, new versions), parsed by
    the real parsers, with the demo's mapping (the synthetic tenant's consent values), e-mails sent."""
    changed = variant == 1
    return RunSetup(
        models=(
            parse_model(contact_score(5 if changed else 3, 2 if changed else 1)),
            parse_model(ACCOUNT_SCORE),
            parse_model(ACCOUNT_REACH),
        ),
        segments=(parse_segment(BUYERS), parse_segment(STAFFED)),
        journeys=(parse_journey(nurture(1 if changed else 2, 2 if changed else 1)), parse_journey(ABM)),
        config=demo_setup().config,
        send_emails=True,
    )


# What the walk must see, per seed.
WAIT_ENDED = "a wait ending"
TRIGGER_EXPIRED = "a trigger expiring"
TRIGGER_FIRED = "a future-dated interaction becoming current and firing a trigger"
WINDOW_ENTERED = "a future-dated interaction entering a scoring window"
WINDOW_LEFT = "an interaction leaving a scoring window"
READ_ELSEWHERE = "a change to a record another partition's evaluation read"
MOVED = "a contact moving to another account"
DELETED = "a contact deleted"
REDEFINED = "a definition change"
EVERY_KIND = (WAIT_ENDED, TRIGGER_EXPIRED, TRIGGER_FIRED, WINDOW_ENTERED, WINDOW_LEFT, READ_ELSEWHERE, MOVED, DELETED,
              REDEFINED)  # fmt: skip

# ---- two tenants ------------------------------------------------------------------------------------------------


class WatchedStore(SqliteStateStore):
    """Tenant A's state store, noting through the port what the agenda did in a run: the partitions a change marked
    due directly, those marked only because their last evaluation read the changed record (`dependents`), the due
    moment each marked partition had before, and the due moment of each partition the run was given."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.given: dict[str, str] = {}
        self.until = ""
        self.direct: set[str] = set()
        self.dependent: set[str] = set()
        self.before: dict[str, str | None] = {}
        self._dependents: set[str] = set()

    def forget_run(self) -> None:
        self.given, self.direct, self.dependent, self.before = {}, set(), set(), {}

    def dependents(self, refs: Iterable[str]) -> set[str]:
        self._dependents = super().dependents(refs)
        self.dependent |= self._dependents
        return self._dependents

    def mark_due(self, partitions: Iterable[str], at: datetime) -> None:
        partitions = set(partitions)
        self.direct |= partitions - self._dependents  # (the mirror marks what a change touched with its dependents)
        self._dependents = set()
        for partition in partitions - self.before.keys():
            row = self.conn.execute("SELECT due FROM agenda WHERE partition = ?", (partition,)).fetchone()
            self.before[partition] = None if row is None else row[0]
        super().mark_due(partitions, at)

    def due_partitions(self, until: datetime, buckets: Collection[int] | None = None) -> list[str]:
        found = super().due_partitions(until, buckets)
        dues = dict(self.conn.execute("SELECT partition, due FROM agenda").fetchall())
        self.given, self.until = {p: str(dues[p]) for p in found}, iso_micro(until)
        return found

    def due_by_time(self) -> set[str]:
        """The partitions of the last run no change touched: evaluated because their due moment had come."""
        return {p for p, due in self.given.items() if due != iso_micro(AT_ONCE)}

    def due_by_reads(self, named: set[str]) -> set[str]:
        """The partitions of the last run marked only because a record their evaluation read elsewhere changed: not
        touched themselves, holding no row the step's changes `named`, and not due by then anyway."""
        marked = (self.dependent - self.direct - named) & self.given.keys()
        return {p for p in marked if (self.before.get(p) or "9999") > self.until}


class TouchedOnly(WatchedStore):
    """An agenda that forgets due moments: only the partitions a change marked are evaluated."""

    def due_partitions(self, until: datetime, buckets: Collection[int] | None = None) -> list[str]:
        return [p for p in super().due_partitions(until, buckets) if p not in self.due_by_time()]


class NoDependents(WatchedStore):
    """An agenda that forgets what each evaluation read in other partitions."""

    def dependents(self, refs: Iterable[str]) -> set[str]:
        return set()


@dataclass
class Tenant:
    emulator: Emulator
    client: DataverseClient  # the test's own: its changes and its reads of what the engine wrote
    store: SqliteStateStore

    def run(self, setup: RunSetup, now: datetime, *, evaluate_all: bool) -> RunReport:
        with fresh_client(self.emulator) as engine:
            return sync(engine, self.store, setup, now=now, evaluate_all=evaluate_all)


@contextmanager
def tenant(seed: int, store: SqliteStateStore) -> Iterator[Tenant]:
    """An emulator loaded with the small tenant of this seed (the same rows for the same seed), and a client."""
    rows = Store()
    for name, batch in generate(SIZE, seed=seed, now=NOW):
        rows.insert_many(TABLES[name], batch)
    try:
        with Emulator(rows, EmulatorIdentity(CALLER_USER_ID)) as emulator, fresh_client(emulator) as client:
            yield Tenant(emulator, client, store)
    finally:
        rows.close()
        store.close()


class SharedClock(Clock):
    """The walk's clock: the runs' `now`, both emulators' stamps (`iso`) and both state stores' claims."""

    def iso(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- what the engine leaves behind ------------------------------------------------------------------------------

ACTIVITY_COLUMNS = ("subject", "_regardingobjectid_value", "_ownerid_value", "statecode", "abm_idempotencykey")
LEAD_COLUMNS = ("subject", "_parentcontactid_value", "_parentaccountid_value", "statecode", "abm_salesready")
SCORE_COLUMNS = (
    "abm_score",
    "abm_grade",
    "abm_salesready",
    "abm_modelversion",
    "abm_consentrule",
    "abm_fitforautomateddecisions",
    "abm_explanation",
)


def rows_of(client: DataverseClient, name: str, columns: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """Every row of a table by id (lower case): the values of `columns`."""
    source = table(name)
    query = Query(source.entity_set).select(source.primary_key, *columns)
    return {str(r[source.primary_key]).lower(): tuple(r.get(c) for c in columns) for r in client.iter_rows(query)}


def score_rows(client: DataverseClient) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The score table by (lead, model): the columns the engine writes but the time it computed them."""
    scores = Query(table("abm_leadscore").entity_set).select("_abm_leadid_value", "abm_model", *SCORE_COLUMNS)
    return {
        (r["_abm_leadid_value"], r["abm_model"]): tuple(r.get(c) for c in SCORE_COLUMNS)
        for r in client.iter_rows(scores)
    }


def dataverse_rows(client: DataverseClient) -> dict[str, Any]:
    """The rows the engine writes: activities (e-mails sent or not), leads with their sales-ready flag, scores by
    (lead, model), workflow runs by (workflow, row)."""
    state: dict[str, Any] = {
        name: rows_of(client, name, ACTIVITY_COLUMNS) for name in ("task", "phonecall", "appointment", "email")
    }
    state["lead"] = rows_of(client, "lead", LEAD_COLUMNS)
    state["scores"] = score_rows(client)
    jobs = Query(table("asyncoperation").entity_set).select("_workflowactivationid_value", "_regardingobjectid_value")
    state["workflow_runs"] = sorted(
        (r["_workflowactivationid_value"], r["_regardingobjectid_value"]) for r in client.iter_rows(jobs)
    )
    return state


def stored(store: SqliteStateStore, setup: RunSetup) -> dict[str, Any]:
    """The state store but the agenda and the checkpoints: progress, handled pairs, tile counts by account, effects
    (a workflow's is the system job's id, the emulator's own), workflow intents (claims aside), the mirror and the
    insights' timeline."""
    counts = store.conn.execute("SELECT * FROM tile_counts ORDER BY 1, 2, 3, 4").fetchall()
    effects = dict(store.conn.execute("SELECT key, entity_id FROM effects").fetchall())
    intents = store.conn.execute("SELECT key, workflow_id, entity_id, job_id IS NULL FROM intents").fetchall()
    jobs = {key for key, *_ in intents}
    return {
        "progress": {j.name: store.progress(j.name) for j in setup.journeys},
        "handled": {j.name: store.handled(j.name) for j in setup.journeys},
        "tile_counts": counts,
        "effects": {key: ("<job>" if key in jobs else value) for key, value in effects.items()},
        "intents": sorted(intents),
        "mirror": mirror_contents(store),
        "timeline": store.conn.execute("SELECT * FROM timeline ORDER BY partition, at, rank, source, type").fetchall(),
    }


def engine_state(tenant: Tenant, setup: RunSetup) -> dict[str, Any]:
    return {"dataverse": dataverse_rows(tenant.client), **stored(tenant.store, setup)}


def differences(a: Any, b: Any, path: str = "", limit: int = 12) -> list[str]:
    """Where two states differ, as paths with both values (at most `limit`)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        found: list[str] = []
        for key in sorted(set(a) | set(b), key=repr):
            if len(found) >= limit:
                break
            if key not in a or key not in b:
                found.append(f"{path}/{key!r}: only in {'B' if key not in a else 'A'}: {a.get(key, b.get(key))!r}")
            elif a[key] != b[key]:
                found += differences(a[key], b[key], f"{path}/{key!r}", limit - len(found))
        return found
    return [f"{path}: A {a!r} != B {b!r}"] if a != b else []


# ---- the changes ------------------------------------------------------------------------------------------------

TITLES = ("Purchaser", "Head of Sales", "CEO", "Engineer", "Analyst", "Purchasing Manager", None)
INTERACTIONS: tuple[tuple[str, str | None], ...] = (  # (type, content type)
    ("EmailOpened", None),
    ("WebsiteVisited", "pricing page"),
    ("FormSubmitted", "whitepaper"),
    ("WebsiteVisited", "blog"),
    ("EventRegistered", "event"),
    ("EmailClicked", None),  # the nurture trigger's: no score counts it
    ("EventRegistered", "webinar"),  # the abm trigger's: no score counts it
)
COUNTED = {"contact": INTERACTIONS[:3], "account": INTERACTIONS[:1] + INTERACTIONS[2:5]}  # what some model counts
OFFSETS = tuple(timedelta(hours=h) for h in (-130, -100, -70, -50, -30, -12, -3, 0, 0, 2, 7, 15, 26, 40, 60, 75))
SOON = tuple(timedelta(hours=h) for h in (2, 5, 11, 20, 30, 45))
ADVANCES = tuple(timedelta(hours=h) for h in (1, 3, 6, 9, 14, 20, 26, 36, 50, 70))
CHANGES = ("title", "consent", "move", "interaction", "interaction", "account", "lead", "contact", "drop",
           "probe-trigger", "probe-score", "probe-read")  # fmt: skip


TABLE_OF = {"delete": "contact", "new-contact": "contact", "interaction": "abm_interaction", "drop": "abm_interaction"}


@dataclass(frozen=True)
class Change:
    """One change, made the same way in both tenants: its kind, the row it is about, the values it sets."""

    kind: str
    id: str
    values: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> set[tuple[str, str]]:
        """The rows it names, as (table, id)."""
        named = {(TABLE_OF.get(self.kind, self.kind), self.id)}
        if self.kind in ("interaction", "drop"):
            named.add(("contact", self.values["contact"]))
        return named


def new_id(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Walk:
    """Draws a step's changes from what tenant A holds (both hold the same): random ones, and probes that set up a
    due moment or a read across partitions that matters."""

    def __init__(self, rng: Random, client: DataverseClient, store: SqliteStateStore) -> None:
        self.rng, self.client, self.store = rng, client, store
        self.interactions: dict[str, str] = {}  # those the walk made: id -> contact
        self.probed: list[datetime] = []  # when the step's probes' interactions become current

    def contacts(self) -> dict[str, tuple[str | None, int]]:
        """Contact ids -> (account, consent option or 0)."""
        rows = rows_of(self.client, "contact", ("_parentcustomerid_value", "msgdpr_gdprconsent"))
        return {id: (str(account).lower() if account else None, level or 0) for id, (account, level) in rows.items()}

    def draw(self, kind: str, now: datetime) -> Change:
        rng, contacts = self.rng, self.contacts()
        accounts = sorted(rows_of(self.client, "account", ()))
        contact = rng.choice(sorted(contacts))
        if kind == "title":
            return Change("contact", contact, {"jobtitle": rng.choice(TITLES)})
        if kind == "consent":
            option = rng.choice((None, CONSENT + 1, CONSENT + 3, CONSENT + 5))
            return Change("contact", contact, {"msgdpr_gdprconsent": option})
        if kind in ("move", "move-with-lead"):
            movers = sorted(c for c, (a, _) in contacts.items() if a is not None)
            if kind == "move-with-lead":  # a contact whose lead (of no account) and its scores go along, first
                # those whose partition holds a score the last run wrote first (not read back yet)
                leads = {r.id: r for r in self.store.mirror("lead") if not r.data.get("_parentaccountid_value")}
                fresh = {r.partition for r in self.store.mirror("abm_leadscore") if r.id.startswith("~")}
                own = {str(r.data.get("_parentcontactid_value") or "").lower(): r.partition for r in leads.values()}
                movers = [c for c in movers if own.get(c) in fresh] or [c for c in movers if c in own] or movers
            mover = rng.choice(movers)
            others = [a for a in accounts if a != contacts[mover][0]]
            target = rng.choice([*others, *others, None])  # now and then to no account at all
            return Change("contact", mover, {"parentcustomerid_account@odata.bind": target and bind("account", target)})
        if kind == "delete":
            return Change("delete", contact)
        if kind == "interaction":
            return self.interaction(contact, rng.choice(INTERACTIONS), now + rng.choice(OFFSETS))
        if kind == "drop":
            if not self.interactions:
                return self.draw("interaction", now)
            dropped = rng.choice(sorted(self.interactions))
            return Change("drop", dropped, {"contact": self.interactions.pop(dropped)})
        if kind == "account":
            account = rng.choice(accounts)
            parents = [None, *(bind("account", a) for a in accounts if a != account)]
            values: dict[str, Any] = rng.choice(
                [
                    {"numberofemployees": rng.choice((None, 40, 300, 6000))},
                    {"address1_city": rng.choice(("Amsterdam", "Berlin"))},
                    {"parentaccountid@odata.bind": rng.choice(parents)},
                ]
            )
            return Change("account", account, values)
        if kind == "lead":  # its contact often in another account than its own
            return self.lead(rng.choice(("both", "both", "contact", "account")), rng.choice(accounts), contact)
        if kind == "lead-of-contact":  # a lead of no account, scored: it sits in its contact's partition
            scored = sorted(c for c, (of, level) in contacts.items() if of and level >= CONSENT + 2)
            return self.lead("contact", "", rng.choice(scored or sorted(contacts)))
        if kind == "probe-trigger":
            return self.probe_trigger(now)
        if kind == "probe-score":
            return self.probe_score(now, contacts)
        if kind == "probe-read":
            return self.probe_read(now, contacts, accounts)
        return Change(
            "new-contact",
            new_id(rng),
            {
                "firstname": "Walker",
                "lastname": f"No. {rng.randrange(1000)}",
                "jobtitle": rng.choice(TITLES),
                "msgdpr_gdprconsent": CONSENT + rng.choice((2, 4, 5)),
                "parentcustomerid_account@odata.bind": bind("account", rng.choice(accounts)),
            },
        )

    def soon(self, now: datetime) -> datetime:
        """A probe's moment, a few hours to two days ahead (noted, for the next step to land just after it)."""
        moment = now + self.rng.choice(SOON)
        self.probed.append(moment)
        return moment

    def interaction(self, contact: str, kind: tuple[str, str | None], occurred_on: datetime) -> Change:
        id = new_id(self.rng)
        self.interactions[id] = contact
        values = {"contact": contact, "type": kind[0], "content_type": kind[1], "occurred_on": occurred_on}
        return Change("interaction", id, values)

    def lead(self, shape: str, account: str, contact: str) -> Change:
        values = {"subject": "Walk-in"}
        if shape in ("both", "account"):
            values["parentaccountid@odata.bind"] = bind("account", account)
        if shape in ("both", "contact"):
            values["parentcontactid@odata.bind"] = bind("contact", contact)
        return Change("lead", new_id(self.rng), values)

    def quiet(self, partitions: Iterable[str], now: datetime) -> bool:
        """Whether no due moment of these partitions (as tenant A's agenda holds them) comes before a probe's moment
        plus the landing's half hour: then only the probe can make them due."""
        horizon = iso_micro(now + max(SOON) + timedelta(hours=1))
        for partition in partitions:
            row = self.store.conn.execute("SELECT due FROM agenda WHERE partition = ?", (partition,)).fetchone()
            if row is not None and row[0] is not None and row[0] <= horizon:
                return False
        return True

    def probe_trigger(self, now: datetime) -> Change:
        """A future-dated interaction of a contact waiting at a trigger: when it becomes current, the trigger fires
        (no score counts it, so only the journey's due moment can make its partition due). Contacts in partitions
        with no other moment due before it come first."""
        waiting = [(p.contact_id, INTERACTIONS[5]) for p in self.store.progress("nurture") if p.tile_id == "clicked"]
        waiting += [(p.contact_id, INTERACTIONS[6]) for p in self.store.progress("abm") if p.tile_id == "engaged"]
        placed = {r.id: r.partition for r in self.store.mirror("contact")}
        waiting = [(c, kind) for c, kind in waiting if c in placed]
        if not waiting:
            return self.draw("interaction", now)
        quiet = [(c, kind) for c, kind in waiting if self.quiet([placed[c]], now)]
        contact, kind = self.rng.choice(sorted(quiet or waiting))
        return self.interaction(contact, kind, self.soon(now))

    def probe_score(self, now: datetime, contacts: Mapping[str, tuple[str | None, int]]) -> Change:
        """A future-dated interaction that an open lead's score will count: of its contact (at the contact model's
        consent), or for a lead of an account only, of a contact of the account (any: a-reach counts everyone's).
        Leads in partitions with no other moment due before it come first."""
        counted: list[tuple[str, str, str]] = []  # (contact, target, lead's partition)
        for row in self.store.mirror("lead"):
            contact = str(row.data.get("_parentcontactid_value") or "").lower()
            account = str(row.data.get("_parentaccountid_value") or "").lower()
            if row.data.get("statecode", 0) != 0:
                continue
            if contact:
                if contacts.get(contact, (None, 0))[1] >= CONSENT + 2:
                    counted.append((contact, "contact", row.partition))
            elif account:
                counted += [(c, "account", row.partition) for c, (of, _) in contacts.items() if of == account]
        if not counted:
            return self.draw("interaction", now)
        quiet = [item for item in counted if self.quiet([item[2]], now)]
        contact, target, _ = self.rng.choice(sorted(quiet or counted))
        return self.interaction(contact, self.rng.choice(COUNTED[target]), self.soon(now))

    def probe_read(self, now: datetime, contacts: Mapping[str, tuple[str | None, int]], accounts: list[str]) -> Change:
        """A change in one partition that a score in another reads: the job title or an interaction of an open
        lead's contact in another account, or the city of the parent of an account with a lead of its own. Without
        such a lead or such a parent yet, the change that makes one."""
        rng, mirror = self.rng, self.store
        apart = []  # (lead's contact) for open leads whose contact sits in another partition
        account_leads = set()  # accounts with an open lead of their own (no contact)
        placed = {r.id: r.partition for r in mirror.mirror("contact")}
        for row in mirror.mirror("lead"):
            contact = str(row.data.get("_parentcontactid_value") or "").lower()
            if row.data.get("statecode", 0) != 0:
                continue
            if contact and contact in placed and placed[contact] != row.partition:
                if contacts.get(contact, (None, 0))[1] >= CONSENT + 2:
                    apart.append(contact)
            elif not contact and row.data.get("_parentaccountid_value"):
                account_leads.add(row.partition)
        if rng.random() < 0.5:
            if not apart:
                consenting = sorted(c for c, (of, level) in contacts.items() if of and level >= CONSENT + 2)
                if not consenting:
                    return self.draw("interaction", now)
                contact = rng.choice(consenting)
                return self.lead("both", rng.choice([a for a in accounts if a != contacts[contact][0]]), contact)
            contact = rng.choice(sorted(apart))
            if rng.random() < 0.5:
                return self.interaction(contact, rng.choice(COUNTED["contact"]), now)
            title = mirror.mirror_rows("contact", [contact])[contact].data.get("jobtitle") or ""
            return Change("contact", contact, {"jobtitle": "Engineer" if title.startswith("Head") else "Head of IT"})
        parents = {r.id: str(r.data.get("_parentaccountid_value") or "").lower() for r in mirror.mirror("account")}
        children = sorted(a for a in account_leads if parents.get(a) and parents[a] != a)
        if not children:
            child = rng.choice(sorted(account_leads) or accounts)
            parent = rng.choice([a for a in accounts if a != child])
            return Change("account", child, {"parentaccountid@odata.bind": bind("account", parent)})
        parent = parents[rng.choice(children)]
        city = mirror.mirror_rows("account", [parent])[parent].data.get("address1_city")
        return Change("account", parent, {"address1_city": "Berlin" if city == "Amsterdam" else "Amsterdam"})


def apply(client: DataverseClient, change: Change, config: MappingConfig) -> None:
    """Make one change in a tenant through the Web API, as another app or a user would."""
    id = uuid.UUID(change.id)
    if change.kind in ("contact", "account"):
        client.update(table(change.kind), id, change.values)
    elif change.kind == "delete":
        client.delete(table("contact"), id)
    elif change.kind == "drop":
        client.delete(table("abm_interaction"), id)
    elif change.kind == "lead":
        client.create(table("lead"), change.values, id=id)
    elif change.kind == "new-contact":
        client.create(table("contact"), change.values, id=id)
    else:
        values = change.values
        content = {"content_type": values["content_type"]} if values["content_type"] else {}
        write = InteractionWrite(
            id, f"walk/{id}", values["type"], values["contact"], values["type"], values["occurred_on"], content
        )
        client.create(table("abm_interaction"), interaction_row(write, config.interactions), id=id)


# ---- what the agenda made A do ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What tenant A holds, to tell afterwards what a run did: progress, effects, scores, where records sit."""

    progress: dict[tuple[str, str], tuple[str | None, bool]]
    effects: frozenset[str]
    scores: dict[tuple[str, str], tuple[Any, ...]]
    partitions: dict[tuple[str, str], str]  # (table, id) -> partition

    @classmethod
    def of(cls, tenant: Tenant, setup: RunSetup) -> Seen:
        store = tenant.store
        progress = {
            (j.name, p.contact_id): (p.tile_id, p.finished) for j in setup.journeys for p in store.progress(j.name)
        }
        effects = frozenset(k for (k,) in store.conn.execute("SELECT key FROM effects").fetchall())
        partitions = {(kind, r.id): r.partition for kind in ("contact", "lead") for r in store.mirror(kind)}
        partitions |= {("abm_interaction", r.id): r.partition for r in store.mirror("abm_interaction")}
        return cls(progress, effects, score_rows(tenant.client), partitions)

    def partition(self, kind: str, id: str) -> str | None:
        return id if kind == "account" else self.partitions.get((kind, id))


def _counts(explanation: str | None, model: str) -> dict[str, int]:
    """Per behaviour rule of the model, the interactions it counted (a `none` rule: -1 when it fired)."""
    fired = {item["rule"]: item["occurrences"] for item in json.loads(explanation or "[]")}
    return {
        rule: (-1 if rule in fired else 0) if frequency == "none" else fired.get(rule, 0)
        for (of, rule), frequency in BEHAVIOUR_RULES.items()
        if of == model
    }


def _trigger_path(journey: str, contact: str, after: Seen, new_effects: set[str]) -> str | None:
    """Which way a contact left a trigger: nurture's paths write an effect of the contact's own each; abm's end on
    a wait each (its per-account effects are written once per account only)."""
    if journey == "nurture":
        paths = {"true": f"nurture/win/contact/{contact}", "false": f"nurture/nudge/contact/{contact}"}
        return next((path for path, key in paths.items() if key in new_effects), None)
    tile = after.progress.get((journey, contact), (None, True))[0]
    return {"hold": "true", "again": "false"}.get(tile or "")


def what_time_did(before: Seen, after: Seen, by_time: set[str]) -> set[str]:
    """The kinds of due moment that changed something in the partitions evaluated only because it had come: a
    contact that rested on a wait or a trigger and moved (and which way), a score that counted more interactions of
    a rule (one entered its window: with no new data, only a future-dated one can) or fewer (one left it)."""
    kinds: set[str] = set()
    new_effects = set(after.effects - before.effects)
    for (journey, contact), (tile, finished) in before.progress.items():
        if finished or after.partition("contact", contact) not in by_time:
            continue
        if after.progress.get((journey, contact)) == (tile, finished):
            continue
        if (journey, tile) in WAITS:
            kinds.add(WAIT_ENDED)
        elif (journey, tile) in TRIGGERS:
            path = _trigger_path(journey, contact, after, new_effects)
            if path is not None:
                kinds.add(TRIGGER_FIRED if path == "true" else TRIGGER_EXPIRED)
    for (lead, model), score in after.scores.items():
        if after.partition("lead", lead) not in by_time or (lead, model) not in before.scores:
            continue
        old, new = _counts(before.scores[(lead, model)][-1], model), _counts(score[-1], model)
        kinds |= {WINDOW_ENTERED for rule, count in new.items() if count > old[rule]}
        kinds |= {WINDOW_LEFT for rule, count in new.items() if count < old[rule]}
    return kinds


def what_reads_did(before: Seen, after: Seen, by_reads: set[str]) -> set[str]:
    """READ_ELSEWHERE when a partition evaluated only because a record it read elsewhere changed had a score or a
    contact's progress change."""
    for (lead, model), score in after.scores.items():
        if after.partition("lead", lead) in by_reads and before.scores.get((lead, model)) not in (None, score):
            return {READ_ELSEWHERE}
    for key, progress in after.progress.items():
        if after.partition("contact", key[1]) in by_reads and before.progress.get(key) != progress:
            return {READ_ELSEWHERE}
    return set()


# ---- the walk ---------------------------------------------------------------------------------------------------


def plan(rng: Random) -> list[list[str]]:
    """The kinds of change of each step: about a third of the steps change nothing (only time passes). A move, a
    delete and a definition change (and back) happen at least once, at steps of the seed's choosing, and the walk ends
    with a new lead of a contact only, whose contact moves before the next run (its first score not read back yet).
    Probes get steps
    of their own: a future-dated interaction (the first probes the account-based trigger every account of its
    segment has just entered) is followed by a quiet step landing half an hour after its moment, and changes read
    across partitions come an hour after the step before ("brief"): in so short a time little else falls due in the
    probed partitions, so a missed moment or a forgotten read shows."""
    steps = [[] if rng.random() < 0.35 else rng.choices(CHANGES, k=rng.randint(1, 3)) for _ in range(STEPS)]
    forced = rng.sample(range(2, STEPS - 2), 8)
    steps[forced[0]].append("move-with-lead")
    steps[forced[1]].append("delete")
    steps[forced[2]].append("define")
    steps[max(forced[2] + 2, forced[3])].append("define")
    reads = ["brief", "probe-read", "probe-read"]  # (the first may only make a lead or a parent to read)
    probes = {
        0: [["probe-trigger"], ["land"]],
        forced[4]: [["probe-score"], ["land"]],
        forced[5]: [[rng.choice(("probe-trigger", "probe-score"))], ["land"]],
        forced[6]: [reads],
        forced[7]: [reads],
    }
    walk: list[list[str]] = []
    for i, kinds in enumerate(steps):
        if i in probes:  # a definition change stays where it was drawn
            first, *rest = probes[i]
            walk += [[*first, *(k for k in kinds if k == "define")], *rest]
        else:
            walk.append(kinds)
    return [*walk, ["lead-of-contact"], ["move-with-lead"]]


@dataclass
class Walked:
    """What the walk saw of the agenda: the kinds of EVERY_KIND, and per incremental step the partitions A
    evaluated and those there were."""

    seen: set[str] = field(default_factory=set)
    evaluated: list[tuple[int, int]] = field(default_factory=list)


def walk(seed: int, monkeypatch: pytest.MonkeyPatch, watched: type[WatchedStore] = WatchedStore) -> Walked:
    """Drive both tenants of `seed` through the walk, comparing them after every step (AssertionError at the first
    difference); `watched` is tenant A's state store. The emulators stamp rows with the walk's clock."""
    rng, clock = Random(seed), SharedClock(NOW)
    monkeypatch.setattr("devtools.emulator.writes.now_iso", clock.iso)
    monkeypatch.setattr("devtools.emulator.actions.now_iso", clock.iso)
    variant, walked = 0, Walked()
    setup = definitions(variant)
    store = watched(clock)
    with tenant(seed, store) as a, tenant(seed, SqliteStateStore(clock=clock)) as b:
        walker = Walk(rng, a.client, store)
        for step, kinds in enumerate([[], *plan(rng)]):
            if "land" in kinds and walker.probed:
                clock.advance(min(walker.probed) + timedelta(minutes=30) - clock.now)
            elif "brief" in kinds:
                clock.advance(timedelta(hours=1))
            elif step:
                clock.advance(rng.choice(ADVANCES))
            before, changes, walker.probed = Seen.of(a, setup), list[Change](), []
            for kind in kinds:
                if kind in ("land", "brief"):
                    continue
                if kind == "define":
                    variant = 1 - variant
                    setup = definitions(variant)
                    walked.seen.add(REDEFINED)
                    continue
                change = walker.draw(kind, clock.now)
                walked.seen |= {MOVED} if kind.startswith("move") else {DELETED} if kind == "delete" else set()
                changes.append(change)
                for side in (a, b):
                    apply(side.client, change, setup.config)
            store.forget_run()
            report = a.run(setup, clock.now, evaluate_all=False)
            b.run(setup, clock.now, evaluate_all=True)
            state_a, state_b = engine_state(a, setup), engine_state(b, setup)
            assert state_a == state_b, (
                f"seed {seed}, step {step} at {clock.now:%Y-%m-%d %H:%M}, changes {changes}, A evaluated "
                f"{report.sync.get('evaluated', 'every partition')}:\n" + "\n".join(differences(state_a, state_b))
            )
            if "evaluated" in report.sync:
                after = Seen.of(a, setup)
                named = {
                    p for c in changes for row in c.rows() for p in (before.partition(*row), after.partition(*row)) if p
                }
                walked.seen |= what_time_did(before, after, store.due_by_time())
                walked.seen |= what_reads_did(before, after, store.due_by_reads(named))
                walked.evaluated.append((report.sync["evaluated"], len(store.mirror_partitions(EVALUATED))))
    return walked


@pytest.mark.parametrize("seed", SEEDS)
def test_a_run_over_the_due_partitions_ends_as_a_run_over_every_partition(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked = walk(seed, monkeypatch)
    missing = [kind for kind in EVERY_KIND if kind not in walked.seen]
    assert not missing, f"seed {seed}: the walk never saw {missing}"
    evaluated, partitions = (sum(counts) for counts in zip(*walked.evaluated, strict=True))
    assert evaluated < partitions / 2, walked.evaluated  # the agenda spared most evaluations: the test is no tautology


@pytest.mark.parametrize(("agenda", "seed"), [(TouchedOnly, 1), (NoDependents, 6)])
def test_the_walk_catches_an_agenda_that_forgets_due_moments_or_reads(
    agenda: type[WatchedStore], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AssertionError, match=f"seed {seed}, step"):
        walk(seed, monkeypatch, agenda)


def test_a_contact_moving_before_its_leads_new_score_is_read_back_takes_the_score_along(
    store: Store, emulator: Emulator
) -> None:
    """The walk's first finding, on its own: a run writes a lead's first score row (the mirror keeps it under its
    alternate key until change tracking brings it back with its id); before the next sync reads it back, the lead's
    contact moves to another account. Applying the move must take the lead and its score along."""
    lead = "e0e0e0e0-0000-4000-8000-000000000001"
    stamps = {"createdon": STAMP, "modifiedon": STAMP, "createdby": CALLER, "createdby__type": "systemuser"}
    store.insert_many(
        TABLES["lead"],
        [
            {
                **stamps,
                "leadid": lead,
                "subject": "Walk-in",
                "parentcontactid": OBRIEN,  # a contact only: the lead sits in its contact's partition
                "parentcontactid__type": "contact",
                "ownerid": REP,
                "ownerid__type": "systemuser",
                "statecode": 0,
                "statuscode": 1,
            }
        ],
    )
    setup = RunSetup(models=(parse_model(contact_score(3, 1)),), config=demo_setup().config)
    state = SqliteStateStore()
    with fresh_client(emulator) as client:
        sync(client, state, setup, now=NOW)
        assert [(r.id, r.partition) for r in state.mirror("abm_leadscore")] == [(f"~{lead}/c-score", CONTOSO)]
        client.update(
            table("contact"), uuid.UUID(OBRIEN), {"parentcustomerid_account@odata.bind": bind("account", FABRIKAM)}
        )
        sync(client, state, setup, now=NOW + timedelta(hours=1))
    assert [(r.id, r.partition) for r in state.mirror("lead")] == [(lead, FABRIKAM)]
    assert [r.partition for r in state.mirror("abm_leadscore")] == [FABRIKAM]
