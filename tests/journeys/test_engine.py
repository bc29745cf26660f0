"""The journey engine: entry, tiles in both targets, per-account once, consent, waits, expiry, leaving, replay."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from journeys.engine import Effect, JourneyState, Step, advance
from journeys.model import Journey, parse_journey
from journeys.segments import Member
from scoring.records import Account, Contact, Interaction

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)
OWNER = "00000000-0000-4000-8000-000000000001"
REL = "contact_account_parentcustomerid"
WORKFLOW = "a5524b23-ea64-4ba3-a076-a2904f14e72f"
ACCOUNTS = {
    "a1": Account("a1", attributes={"name": "Acme", "address1_city": "Amsterdam"}),
    "a2": Account("a2", attributes={"name": "Bolt", "address1_city": "Utrecht"}),
}


def contact(cid: str, account: str | None, consent: int | None = 4, **attributes: Any) -> Contact:
    return Contact(cid, account, consent, attributes.pop("dnb", False), {"firstname": cid.upper(), **attributes})


def journey(target: str, tiles: Sequence[Any], start: str | None = None, consent: int = 3) -> Journey:
    return parse_journey(
        {
            "name": "j",
            "version": 1,
            "status": "live",
            "target": target,
            "minimum_consent": consent,
            "owner": OWNER,
            "segment": "s",
            "start": start or tiles[0]["id"],
            "tiles": list(tiles),
        }
    )


def opened(cid: str, days_ago: float) -> Interaction:
    return Interaction(f"i-{cid}-{days_ago}", cid, "EmailOpened", NOW - timedelta(days=days_ago), {"asset": "news"})


def run(
    j: Journey,
    contacts: Sequence[Contact],
    state: JourneyState | None = None,
    *,
    now: datetime = NOW,
    interactions: Sequence[Interaction] = (),
    members: Sequence[Contact] | None = None,
    **kwargs: Any,
) -> Step:
    by_contact: dict[str, list[Interaction]] = {}
    for item in interactions:
        by_contact.setdefault(item.contact_id or "", []).append(item)
    chosen = contacts if members is None else members
    return advance(
        j,
        [Member(c.id, c.account_id) for c in chosen],
        {c.id: c for c in contacts},
        ACCOUNTS,
        by_contact,
        state or JourneyState(),
        now=now,
        **kwargs,
    )


def kinds(effects: Sequence[Effect]) -> list[tuple[str, str]]:
    return [(e.kind, e.key) for e in effects]


def where(step: Step) -> Mapping[str, str | None]:
    return {cid: p.tile_id for cid, p in step.state.progress.items()}


ACCOUNT_ACTIONS: list[dict[str, Any]] = [
    {"id": "call", "type": "activity", "activity": "phonecall", "for_each": "account", "assigned_to": "account_owner",
     "regarding": "account", "subject": "Call {{contact.contact_account_parentcustomerid.name}}",
     "description": "via {{contact.firstname}}", "next": "task"},
    {"id": "task", "type": "activity", "activity": "task", "for_each": "account", "assigned_to": "account_creator",
     "regarding": "contact", "subject": "Plan", "next": "meet"},
    {"id": "meet", "type": "activity", "activity": "appointment", "for_each": "account", "assigned_to": "journey_owner",
     "subject": "Meet", "next": "lead"},
    {"id": "lead", "type": "create_lead", "for_each": "account", "subject": "ABM: {{contact." + REL + ".name}}",
     "next": "flow"},
    {"id": "flow", "type": "launch_workflow", "workflow": WORKFLOW, "for_each": "account", "next": None},
]  # fmt: skip
CONTACT_ACTIONS: list[dict[str, Any]] = [
    {"id": "task", "type": "activity", "activity": "task", "subject": "Hi {{contact.firstname}}", "next": "mail"},
    {"id": "mail", "type": "email", "subject": "Hello {{contact.firstname}}",
     "template": "<p>{{contact.contact_account_parentcustomerid.name}}</p>", "next": "lead"},
    {"id": "lead", "type": "create_lead", "subject": "Lead {{contact.firstname}}", "next": "flow"},
    {"id": "flow", "type": "launch_workflow", "workflow": WORKFLOW, "next": None},
]  # fmt: skip


def test_per_account_tiles_act_once_per_account_across_runs() -> None:
    j = journey("account", ACCOUNT_ACTIONS)
    first = run(j, [contact("c1", "a1"), contact("c2", "a1"), contact("c3", None)],
                owner_of={"a1": "u-owner"}, creator_of={})  # fmt: skip
    keys = [e.key for e in first.effects]
    assert keys == sorted(keys) and len(keys) == 5
    by_tile = {e.tile_id: e for e in first.effects}
    call = by_tile["call"]
    assert call.key == "j/call/account/a1" and call.kind == "phonecall" and call.owner_id == "u-owner"
    assert call.regarding == ("account", "a1") and call.subject == "Call Acme" and call.body == "via C1"
    assert call.contact_id is None and call.account_id == "a1"
    assert by_tile["task"].owner_id == OWNER and by_tile["task"].regarding == ("contact", "c1")  # creator unknown
    assert by_tile["meet"].kind == "appointment" and by_tile["meet"].owner_id == OWNER
    assert (
        by_tile["lead"].kind == "lead" and by_tile["lead"].contact_id is None and by_tile["lead"].subject == "ABM: Acme"
    )
    flow = by_tile["flow"]
    assert flow.kind == "workflow" and flow.workflow_id == WORKFLOW and flow.entity == ("account", "a1")
    assert first.counts["call"]["entered"] == 3 and first.counts["call"]["activities"] == 1
    assert first.counts["call"]["no_account"] == 1
    assert first.counts_by_account["a1"]["lead"]["leads"] == 1 and first.counts_by_account["a1"]["lead"]["entered"] == 2
    assert all(p.finished and p.tile_id is None for p in first.state.progress.values())
    # a later contact of the same account acts nothing; a new account acts once
    later = run(j, [contact("c1", "a1"), contact("c4", "a1"), contact("c5", "a2")], first.state,
                creator_of={"a2": "u-creator"})  # fmt: skip
    assert {e.account_id for e in later.effects} == {"a2"}
    assert {e.tile_id: e.owner_id for e in later.effects}["task"] == "u-creator"
    assert ("call", "a1") in later.state.handled and ("call", "a2") in later.state.handled


def test_contact_tiles_act_per_contact() -> None:
    j = journey("contact", CONTACT_ACTIONS)
    step = run(j, [contact("c1", "a1"), contact("c2", None)])
    assert kinds(step.effects) == [
        ("workflow", "j/flow/contact/c1"), ("workflow", "j/flow/contact/c2"),
        ("lead", "j/lead/contact/c1"), ("lead", "j/lead/contact/c2"),
        ("email", "j/mail/contact/c1"), ("email", "j/mail/contact/c2"),
        ("task", "j/task/contact/c1"), ("task", "j/task/contact/c2"),
    ]  # fmt: skip
    lead = next(e for e in step.effects if e.key == "j/lead/contact/c1")
    assert lead.contact_id == "c1" and lead.account_id == "a1" and lead.owner_id == OWNER
    flow = next(e for e in step.effects if e.key == "j/flow/contact/c2")
    assert flow.entity == ("contact", "c2") and flow.owner_id is None
    task = next(e for e in step.effects if e.key == "j/task/contact/c1")
    assert task.regarding == ("contact", "c1") and task.owner_id == OWNER and task.subject == "Hi C1"
    assert step.counts["mail"]["emails"] == 2 and step.counts["flow"]["workflows"] == 2


def test_per_contact_tiles_in_an_account_journey_regarding_account() -> None:
    tiles = [{"id": "t", "type": "activity", "activity": "task", "regarding": "account", "subject": "x", "next": None}]
    step = run(journey("account", tiles), [contact("c1", "a1"), contact("c2", None)])
    assert [(e.key, e.regarding) for e in step.effects] == [
        ("j/t/contact/c1", ("account", "a1")),
        ("j/t/contact/c2", ("contact", "c2")),  # no account: regarding the contact
    ]


def test_golden_rendered_email() -> None:
    name = "contact.contact_account_parentcustomerid.name"
    body = (
        f"<p>{{{{#if {name}}}}}Hi {{{{{name}}}}} ({{{{contact.parentcustomerid}}}}){{{{else}}}}Hi there{{{{/if}}}}, "
        "{{contact.note}}{{contact.missing}}</p>"
    )
    tiles = [{"id": "m", "type": "email", "subject": f"{{{{contact.firstname}}}} & {{{{{name}}}}}", "template": body,
              "next": None}]  # fmt: skip
    evil = contact("c1", "a1", note="<script>x</script> & more")
    step = run(journey("account", tiles), [evil, contact("c2", None, note="ok")])
    assert [(e.subject, e.body) for e in step.effects] == [
        ("C1 & Acme", "<p>Hi Acme (a1), &lt;script&gt;x&lt;/script&gt; &amp; more</p>"),
        ("C2 & ", "<p>Hi there, ok</p>"),
    ]
    assert step.effects[0].regarding == ("contact", "c1")


def test_consent_and_do_not_bulk_email_skip_emails_but_continue() -> None:
    tiles = [{"id": "m", "type": "email", "subject": "s", "template": "t", "next": "w"},
             {"id": "w", "type": "wait", "days": 1, "next": None}]  # fmt: skip
    people = [contact("ok", "a1", 3), contact("low", "a1", 2), contact("none", "a1", None),
              contact("dnb", "a1", 5, dnb=True)]  # fmt: skip
    step = run(journey("contact", tiles), people)
    assert [e.contact_id for e in step.effects] == ["ok"]
    assert step.counts["m"]["skipped_consent"] == 3 and step.counts["m"]["emails"] == 1
    assert set(where(step).values()) == {"w"}


def test_waits_hold_then_release_and_until() -> None:
    tiles = [{"id": "w", "type": "wait", "days": 3, "next": "u"},
             {"id": "u", "type": "wait", "until": "2025-03-10T00:00:00+00:00", "next": "t"},
             {"id": "t", "type": "activity", "activity": "task", "subject": "s", "next": None}]  # fmt: skip
    j, people = journey("contact", tiles), [contact("c1", "a1")]
    first = run(j, people)
    assert where(first) == {"c1": "w"} and not first.effects
    early = run(j, people, first.state, now=NOW + timedelta(days=2, hours=23))
    assert where(early) == {"c1": "w"} and early.state == first.state
    moved = run(j, people, early.state, now=NOW + timedelta(days=3))
    assert where(moved) == {"c1": "u"} and moved.counts["u"]["entered"] == 1
    done = run(j, people, moved.state, now=datetime(2025, 3, 10, tzinfo=UTC))
    assert where(done) == {"c1": None} and [e.key for e in done.effects] == ["j/t/contact/c1"]
    # each tile has its own entry time; the journey keeps the time the contact entered it (insights count entries)
    assert moved.state.progress["c1"].entered_at == NOW + timedelta(days=3)
    assert {done.state.progress["c1"].started_at, moved.state.progress["c1"].started_at} == {NOW}


BRANCH_TRUE: dict[str, Any] = {"id": "yes", "type": "activity", "activity": "task", "subject": "y", "next": None}
BRANCH_FALSE: dict[str, Any] = {"id": "no", "type": "activity", "activity": "task", "subject": "n", "next": None}


def trigger(**options: Any) -> dict[str, Any]:
    return {"id": "if", "type": "trigger", "condition": {"interaction": "EmailOpened", "within_days": 30},
            "expires_after_days": 14, "true": "yes", "false": "no", **options}  # fmt: skip


def paths(step: Step) -> dict[str, str]:
    return {e.contact_id or "": e.tile_id for e in step.effects}


def test_account_trigger_any_sends_the_whole_account_one_way() -> None:
    j = journey("account", [trigger(based_on="account", account_rule="any"), BRANCH_TRUE, BRANCH_FALSE])
    people = [contact("c1", "a1"), contact("c2", "a1"), contact("c3", "a2"), contact("c4", "a2")]
    step = run(j, people, interactions=[opened("c1", 2), opened("c3", 40)])
    assert paths(step) == {"c1": "yes", "c2": "yes"}
    assert where(step)["c3"] == "if" and where(step)["c4"] == "if"  # a2 waits
    assert step.counts["if"]["true"] == 2 and step.counts_by_account["a1"]["if"]["true"] == 2


def test_account_trigger_all_needs_every_contact() -> None:
    j = journey("account", [trigger(based_on="account", account_rule="all"), BRANCH_TRUE, BRANCH_FALSE])
    people = [contact("c1", "a1"), contact("c2", "a1"), contact("c3", "a2")]
    step = run(j, people, interactions=[opened("c1", 2), opened("c3", 1)])
    assert paths(step) == {"c3": "yes"}
    later = run(j, people, step.state, now=NOW + timedelta(days=1), interactions=[opened("c1", 3), opened("c2", 0)])
    assert paths(later) == {"c1": "yes", "c2": "yes"}


def test_contact_trigger_diverges_within_an_account_and_expires_to_false() -> None:
    j = journey("account", [trigger(based_on="contact"), BRANCH_TRUE, BRANCH_FALSE])
    people = [contact("c1", "a1"), contact("c2", "a1")]
    step = run(j, people, interactions=[opened("c1", 1)])
    assert paths(step) == {"c1": "yes"} and where(step)["c2"] == "if"
    not_yet = run(j, people, step.state, now=NOW + timedelta(days=13))
    assert not not_yet.effects
    expired = run(j, people, not_yet.state, now=NOW + timedelta(days=14))
    assert paths(expired) == {"c2": "no"} and expired.counts["if"]["false"] == 1


def test_account_expiry_counts_from_the_earliest_entry() -> None:
    j = journey("account", [trigger(based_on="account"), BRANCH_TRUE, BRANCH_FALSE])
    first = run(j, [contact("c1", "a1")])
    both = [contact("c1", "a1"), contact("c2", "a1")]
    second = run(j, both, first.state, now=NOW + timedelta(days=10))
    assert not second.effects and second.state.progress["c2"].entered_at == NOW + timedelta(days=10)
    expired = run(j, both, second.state, now=NOW + timedelta(days=14))
    assert paths(expired) == {"c1": "no", "c2": "no"}


def test_attribute_triggers_on_contact_and_account() -> None:
    tiles = [{"id": "if", "type": "trigger", "expires_after_days": 0, "true": "yes", "false": "no",
              "condition": {"attribute": "account.address1_city", "op": "eq", "value": "amsterdam"}},
             BRANCH_TRUE, BRANCH_FALSE]  # fmt: skip
    step = run(journey("contact", tiles), [contact("c1", "a1"), contact("c2", "a2"), contact("c3", None)])
    assert paths(step) == {"c1": "yes", "c2": "no", "c3": "no"}
    tiles[0] = {**tiles[0], "condition": {"attribute": "contact.jobtitle", "op": "startswith", "value": "Head"}}
    step = run(journey("contact", tiles), [contact("c1", "a1", jobtitle="Head of IT"), contact("c2", "a1")])
    assert paths(step) == {"c1": "yes", "c2": "no"}


def test_interaction_where_and_window() -> None:
    tiles = [trigger(condition={"interaction": "EmailOpened", "within_days": 5,
                                "where": [{"field": "asset", "op": "eq", "value": "news"}]}, expires_after_days=0),
             BRANCH_TRUE, BRANCH_FALSE]  # fmt: skip
    other = Interaction("x", "c3", "EmailOpened", NOW, {"asset": "promo"})
    step = run(journey("contact", tiles), [contact("c1", "a1"), contact("c2", "a1"), contact("c3", "a1")],
               interactions=[opened("c1", 4), opened("c2", 6), other])  # fmt: skip
    assert paths(step) == {"c1": "yes", "c2": "no", "c3": "no"}


def test_leaving_the_segment_stops_and_inactive_contacts_never_enter() -> None:
    tiles = [{"id": "w", "type": "wait", "days": 1, "next": "t"},
             {"id": "t", "type": "activity", "activity": "task", "subject": "s", "next": None}]  # fmt: skip
    j = journey("contact", tiles)
    people = [contact("c1", "a1"), contact("c2", "a1"), contact("off", "a1", statecode=1)]
    first = run(j, people)
    assert set(first.state.progress) == {"c1", "c2"} and first.counts["w"]["entered"] == 2
    second = run(j, people, first.state, now=NOW + timedelta(days=2), members=people[:1])
    assert second.left == 1 and [e.contact_id for e in second.effects] == ["c1"]
    stopped = second.state.progress["c2"]
    assert stopped.finished and stopped.tile_id == "w"
    back = run(j, people, second.state, now=NOW + timedelta(days=3))
    assert not back.effects and back.left == 0 and "c2" in back.state.progress  # no re-entry


def test_rerunning_with_the_returned_state_creates_nothing_twice() -> None:
    j = parse_journey(
        json.loads((Path(__file__).resolve().parents[2] / "definitions/journeys/abm-nurture.json").read_text())
    )
    people = [contact("c1", "a1"), contact("c2", "a1"), contact("c3", "a2"), contact("c4", "a2", 1)]
    seen: set[str] = set()
    state = JourneyState()
    for day in range(0, 30, 2):
        step = run(j, people, state, now=NOW + timedelta(days=day), interactions=[opened("c1", -day + 1)])
        assert not seen & {e.key for e in step.effects}
        seen |= {e.key for e in step.effects}
        state = step.state
    assert {k.rsplit("/", 2)[0] for k in seen} == {"abm-nurture/call", "abm-nurture/review", "abm-nurture/lead",
                                                   "abm-nurture/flow", "abm-nurture/mail"}  # fmt: skip
    assert all(p.finished for p in state.progress.values())
    again = run(j, people, state, now=NOW + timedelta(days=40))
    assert not again.effects


def test_deterministic() -> None:
    j = journey("account", ACCOUNT_ACTIONS)
    people = [contact("c2", "a1"), contact("c1", "a1"), contact("c3", "a2")]
    assert run(j, people) == run(j, list(reversed(people)))
