"""Due moments of journeys: per rule with hand-computed moments, then properties against `advance` itself (nothing
moves before the earliest due moment; at its due moment a contact does move, where the rules say it must)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from journeys.due import next_change
from journeys.engine import JourneyState, Progress, Step, advance
from journeys.model import Journey, TriggerTile, WaitTile, parse_journey
from journeys.segments import Member
from scoring.records import Account, Contact, Interaction

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)
US = timedelta(microseconds=1)
OWNER = "00000000-0000-4000-8000-000000000001"
WORKFLOW = "a5524b23-ea64-4ba3-a076-a2904f14e72f"
ACCOUNTS = {"a1": Account("a1", attributes={"name": "Acme"}), "a2": Account("a2", attributes={"name": "Bolt"})}
TASK: dict[str, Any] = {"id": "done", "type": "activity", "activity": "task", "subject": "s", "next": None}


def journey(tiles: Sequence[dict[str, Any]], target: str = "contact", status: str = "live") -> Journey:
    return parse_journey(
        {
            "name": "j",
            "version": 1,
            "status": status,
            "target": target,
            "minimum_consent": 0,
            "owner": OWNER,
            "segment": "s",
            "start": tiles[0]["id"],
            "tiles": list(tiles),
        }
    )


def wait(**options: Any) -> dict[str, Any]:
    return {"id": "w", "type": "wait", "next": "done", **options}


def trigger(condition: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    condition = condition or {"interaction": "EmailOpened", "within_days": 5}
    return {"id": "if", "type": "trigger", "condition": condition, "expires_after_days": 14, "true": "done",
            "false": None, **options}  # fmt: skip


def at(tile: str | None, entered: datetime, contact: str = "c1", *, finished: bool = False) -> Progress:
    return Progress(contact, tile, entered, finished, entered)


def opened(contact: str, when: datetime, kind: str = "EmailOpened", asset: str = "news") -> Interaction:
    return Interaction(f"i-{contact}-{kind}-{when.isoformat()}", contact, kind, when, {"asset": asset})


def grouped(interactions: Sequence[Interaction]) -> dict[str, list[Interaction]]:
    by_contact: dict[str, list[Interaction]] = {}
    for item in interactions:
        by_contact.setdefault(item.contact_id or "", []).append(item)
    return by_contact


# -- wait tiles ------------------------------------------------------------------------------------------------------


def test_wait_days_is_due_at_entry_plus_days() -> None:
    j = journey([wait(days=3), TASK])
    assert next_change(j, [at("w", NOW - timedelta(days=1))], {}, now=NOW) == {"c1": NOW + timedelta(days=2)}
    half = journey([wait(days=0.5), TASK])
    assert next_change(half, [at("w", NOW)], {}, now=NOW) == {"c1": NOW + timedelta(hours=12)}


def test_wait_until_is_due_at_until_in_utc() -> None:
    j = journey([wait(until="2025-03-10T09:30:00+02:00"), TASK])
    due = next_change(j, [at("w", NOW - timedelta(days=30))], {}, now=NOW)
    assert due == {"c1": datetime(2025, 3, 10, 7, 30, tzinfo=UTC)} and due["c1"].tzinfo is UTC


def test_a_wait_released_at_or_before_now_is_not_due() -> None:
    # advance at `now` already released it (now >= release), so nothing is left to wait for
    j = journey([wait(days=3), TASK])
    progress = [at("w", NOW - timedelta(days=3), "exactly"), at("w", NOW - timedelta(days=4), "before"),
                at("w", NOW - timedelta(days=3) + US, "just-after")]  # fmt: skip
    assert next_change(j, progress, {}, now=NOW) == {"just-after": NOW + US}
    until = journey([wait(until=NOW.isoformat()), TASK])
    assert next_change(until, [at("w", NOW - timedelta(days=1))], {}, now=NOW) == {}


# -- trigger tiles ---------------------------------------------------------------------------------------------------


def test_trigger_is_due_at_its_expiry() -> None:
    j = journey([trigger(), TASK])
    assert next_change(j, [at("if", NOW - timedelta(days=10))], {}, now=NOW) == {"c1": NOW + timedelta(days=4)}
    quick = journey([trigger(expires_after_days=0.25), TASK])
    assert next_change(quick, [at("if", NOW)], {}, now=NOW) == {"c1": NOW + timedelta(hours=6)}
    expired = [at("if", NOW - timedelta(days=14), "c1"), at("if", NOW - timedelta(days=20), "c2")]
    assert next_change(j, expired, {}, now=NOW) == {}


def test_future_interaction_of_the_type_passing_where_is_due_when_it_becomes_current() -> None:
    condition = {"interaction": "EmailOpened", "within_days": 5,
                 "where": [{"field": "asset", "op": "eq", "value": "news"}]}  # fmt: skip
    j = journey([trigger(condition), TASK])
    interactions = [
        opened("c1", NOW + timedelta(hours=2), asset="promo"),  # fails where
        opened("c1", NOW + timedelta(hours=3), kind="FormSubmitted"),  # other type
        opened("c2", NOW + timedelta(hours=4)),  # another contact
        opened("c1", NOW),  # exactly now: already current (advance saw it at now)
        opened("c1", NOW - timedelta(days=1)),  # past
        opened("c1", NOW + timedelta(days=2)),
        opened("c1", NOW + timedelta(days=1)),
    ]
    due = next_change(j, [at("if", NOW - timedelta(days=1))], grouped(interactions), now=NOW)
    assert due == {"c1": NOW + timedelta(days=1)}
    # a future interaction after the expiry: the expiry comes first
    late = grouped([opened("c1", NOW + timedelta(days=20))])
    assert next_change(j, [at("if", NOW)], late, now=NOW) == {"c1": NOW + timedelta(days=14)}
    # an interaction exactly at now is not a future moment: only the expiry is left
    assert next_change(j, [at("if", NOW)], grouped([opened("c1", NOW)]), now=NOW) == {"c1": NOW + timedelta(days=14)}


def test_attribute_trigger_is_due_only_at_expiry() -> None:
    condition = {"attribute": "contact.jobtitle", "op": "eq", "value": "CFO"}
    j = journey([trigger(condition, expires_after_days=2), TASK])
    interactions = grouped([opened("c1", NOW + timedelta(hours=1))])
    assert next_change(j, [at("if", NOW)], interactions, now=NOW) == {"c1": NOW + timedelta(days=2)}


def test_account_trigger_each_contact_has_its_own_expiry_and_the_group_moves_at_the_earliest() -> None:
    j = journey([trigger(based_on="account"), TASK], target="account")
    contacts = {"c1": Contact("c1", "a1", 3), "c2": Contact("c2", "a1", 3)}
    members = [Member("c1", "a1"), Member("c2", "a1")]
    first = advance(j, members[:1], contacts, ACCOUNTS, {}, JourneyState(), now=NOW - timedelta(days=10))
    state = advance(j, members, contacts, ACCOUNTS, {}, first.state, now=NOW).state
    due = next_change(j, state.progress.values(), {}, now=NOW)
    assert due == {"c1": NOW + timedelta(days=4), "c2": NOW + timedelta(days=14)}
    before = advance(j, members, contacts, ACCOUNTS, {}, state, now=min(due.values()) - US)
    assert {c: p.tile_id for c, p in before.state.progress.items()} == {"c1": "if", "c2": "if"}
    moved = advance(j, members, contacts, ACCOUNTS, {}, state, now=min(due.values()))
    assert {c: p.tile_id for c, p in moved.state.progress.items()} == {"c1": None, "c2": None}  # false path: end


# -- who is left out -------------------------------------------------------------------------------------------------


def test_finished_ended_action_and_unknown_tiles_are_absent() -> None:
    j = journey([wait(days=3), TASK])
    progress = [
        at("w", NOW, "finished", finished=True),  # left the segment on a wait: no longer runs
        at(None, NOW, "ended", finished=True),
        at("done", NOW, "no-record"),  # resting on an action tile: advance cannot see its contact
        at("gone", NOW, "removed-tile"),
        at("w", NOW, "waiting"),
    ]
    assert next_change(j, progress, {}, now=NOW) == {"waiting": NOW + timedelta(days=3)}


def test_draft_journey_moves_nobody() -> None:
    j = journey([wait(days=1), TASK], status="draft")
    assert next_change(j, [at("w", NOW)], {}, now=NOW) == {}


def test_now_must_be_aware() -> None:
    j = journey([wait(days=1), TASK])
    with pytest.raises(ValueError, match="aware"):
        next_change(j, [], {}, now=datetime(2025, 3, 1, 12))  # naive on purpose


def test_now_in_another_zone_is_the_same_instant() -> None:
    j = journey([wait(days=3), TASK])
    cet = NOW.astimezone(timezone(timedelta(hours=1)))
    assert next_change(j, [at("w", NOW)], {}, now=cet) == {"c1": NOW + timedelta(days=3)}


def test_due_moments_match_advance_for_a_wait_then_a_trigger() -> None:
    j = journey([wait(days=1, next="if"), trigger(expires_after_days=3), TASK])
    contacts, members = {"c1": Contact("c1", "a1", 3)}, [Member("c1", "a1")]
    interactions = grouped([opened("c1", NOW + timedelta(days=2, hours=5))])
    state = advance(j, members, contacts, ACCOUNTS, interactions, JourneyState(), now=NOW).state
    due = next_change(j, state.progress.values(), interactions, now=NOW)
    assert due == {"c1": NOW + timedelta(days=1)}
    assert advance(j, members, contacts, ACCOUNTS, interactions, state, now=due["c1"] - US).state == state
    released = advance(j, members, contacts, ACCOUNTS, interactions, state, now=due["c1"]).state
    assert released.progress["c1"].tile_id == "if"
    due = next_change(j, released.progress.values(), interactions, now=NOW + timedelta(days=1))
    assert due == {"c1": NOW + timedelta(days=2, hours=5)}  # the interaction comes before the expiry (day 4)
    step = advance(j, members, contacts, ACCOUNTS, interactions, released, now=due["c1"])
    assert [e.key for e in step.effects] == ["j/done/contact/c1"]


# -- properties ------------------------------------------------------------------------------------------------------

CONTACT_IDS = ("c0", "c1", "c2", "c3", "c4")
TYPES = ("EmailOpened", "FormSubmitted")
fast = settings(max_examples=300, deadline=None, database=None)


def offsets(low: int = -24, high: int = 24) -> st.SearchStrategy[timedelta]:
    """Around now, on a quarter-day grid (so moments coincide with now and window edges), sometimes 1 µs off."""
    return st.builds(
        lambda quarters, jitter: timedelta(hours=6 * quarters, microseconds=jitter),
        st.integers(low, high),
        st.sampled_from((0, 0, 0, 1, -1)),
    )


@st.composite
def tiles(draw: st.DrawFn, target: str) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 5))
    ids = [f"t{i}" for i in range(count)]
    out: list[dict[str, Any]] = []
    for i, tile_id in enumerate(ids):
        ref = st.sampled_from((None, *ids[i + 1 :]))
        kind = draw(st.sampled_from(("trigger", "wait", "trigger", "wait", "trigger", "email", "activity", "lead",
                                     "workflow")))  # fmt: skip
        per = {"for_each": draw(st.sampled_from(("contact", "account")))} if target == "account" else {}
        if kind == "wait":
            if draw(st.booleans()):
                out.append({"id": tile_id, "type": "wait", "days": draw(st.sampled_from((0, 0.25, 1, 2.5)))})
            else:
                out.append({"id": tile_id, "type": "wait", "until": (NOW + draw(offsets())).isoformat()})
            out[-1]["next"] = draw(ref)
        elif kind == "trigger":
            condition: dict[str, Any]
            if draw(st.sampled_from(("interaction", "interaction", "interaction", "attribute"))) == "interaction":
                condition = {"interaction": draw(st.sampled_from(TYPES)), "within_days": draw(st.integers(1, 3))}
                if draw(st.booleans()):
                    condition["where"] = [{"field": "asset", "op": "eq", "value": "news"}]
            else:
                condition = {"attribute": "contact.jobtitle", "op": "eq", "value": "CFO"}
            options = {}
            if target == "account":
                options = {"based_on": draw(st.sampled_from(("contact", "account"))),
                           "account_rule": draw(st.sampled_from(("any", "all")))}  # fmt: skip
            out.append({"id": tile_id, "type": "trigger", "condition": condition, "true": draw(ref),
                        "false": draw(ref), "expires_after_days": draw(st.sampled_from((7, 3, 0.5, 0, 7))),
                        **options})  # fmt: skip
        elif kind == "email":
            out.append({"id": tile_id, "type": "email", "subject": "s", "template": "<p>t</p>", "next": draw(ref)})
        elif kind == "activity":
            out.append({"id": tile_id, "type": "activity", "activity": "task", "subject": "s", "next": draw(ref),
                        **per})  # fmt: skip
        elif kind == "workflow":
            out.append({"id": tile_id, "type": "launch_workflow", "workflow": WORKFLOW, "next": draw(ref), **per})
        else:
            out.append({"id": tile_id, "type": "create_lead", "subject": "s", "next": draw(ref), **per})
    return out


@dataclass(frozen=True)
class Scenario:
    journey: Journey
    members: tuple[Member, ...]
    contacts: Mapping[str, Contact]
    interactions: Mapping[str, Sequence[Interaction]]
    state: JourneyState  # as advance left it at NOW

    def run(self, now: datetime) -> Step:
        """`advance` at `now` from the state it left at NOW."""
        return advance(self.journey, self.members, self.contacts, ACCOUNTS, self.interactions, self.state, now=now)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    target = draw(st.sampled_from(("contact", "account")))
    j = journey(draw(tiles(target)), target=target)
    contacts = {
        cid: Contact(cid, draw(st.sampled_from(("a1", "a2", None))), draw(st.sampled_from((None, 0, 3, 5))),
                     attributes={"statecode": draw(st.sampled_from((0, 0, 0, 1))),
                                 "jobtitle": draw(st.sampled_from(("CFO", "Buyer")))})
        for cid in CONTACT_IDS
    }  # fmt: skip
    members = tuple(Member(c.id, c.account_id) for c in contacts.values() if draw(st.integers(0, 3)))
    progress = {}
    for cid in CONTACT_IDS:
        if draw(st.booleans()):
            entered = NOW + draw(offsets())
            finished = not draw(st.integers(0, 5))
            progress[cid] = Progress(cid, draw(st.sampled_from([t.id for t in j.tiles])), entered, finished, entered)
    interactions = draw(
        st.lists(
            st.builds(
                lambda c, kind, offset, asset: Interaction(f"i-{c}-{kind}-{offset}", c, kind, NOW + offset,
                                                           {"asset": asset}),
                st.sampled_from(CONTACT_IDS), st.sampled_from((*TYPES, TYPES[0])), offsets(-8, 24),
                st.sampled_from(("news", "news", "promo")),
            ),
            max_size=10,
        )
    )  # fmt: skip
    by_contact = grouped(interactions)
    state = advance(j, members, contacts, ACCOUNTS, by_contact, JourneyState(progress), now=NOW).state
    return Scenario(j, members, contacts, by_contact, state)


def tiles_of(step: Step) -> dict[str, tuple[str | None, bool]]:
    return {c: (p.tile_id, p.finished) for c, p in step.state.progress.items()}


def account_rule(scenario: Scenario, contact_id: str) -> str | None:
    """`any`/`all` when the contact is at an account-based trigger with its account's group, else None (alone)."""
    tile = scenario.journey.tile(scenario.state.progress[contact_id].tile_id or "")
    if isinstance(tile, TriggerTile) and tile.based_on == "account" and scenario.contacts[contact_id].account_id:
        return tile.account_rule
    return None


def kind_of(scenario: Scenario, contact_id: str, moment: datetime) -> str:
    progress = scenario.state.progress[contact_id]
    tile = scenario.journey.tile(progress.tile_id or "")
    if not isinstance(tile, TriggerTile):
        return "wait"
    return "expiry" if moment == progress.entered_at + timedelta(days=tile.expires_after_days) else "interaction"


def probes(scenario: Scenario) -> set[datetime]:
    """Every moment at which time alone could move someone: any entry time plus any duration a tile has, any
    `until`, any interaction's time; each with its neighbours a microsecond either side. Between consecutive probes
    `advance` gives the same result, so checking them all checks every moment."""
    durations = {timedelta(0)}
    edges = {item.occurred_on for items in scenario.interactions.values() for item in items}
    for tile in scenario.journey.tiles:
        if isinstance(tile, WaitTile) and tile.until is not None:
            edges.add(tile.until)
        elif isinstance(tile, WaitTile):
            durations.add(timedelta(days=tile.days or 0))
        elif isinstance(tile, TriggerTile):
            durations.add(timedelta(days=tile.expires_after_days))
    edges |= {p.entered_at + d for p in scenario.state.progress.values() for d in durations}
    return {edge + k * US for edge in edges for k in (-1, 0, 1)}


def check(scenario: Scenario, fraction: float) -> Counter[str]:
    """Property A (nothing moves before the earliest due moment) and B (a contact on its own moves exactly at its due
    moment; in an account's group it has moved by then, unless an `all` group waits for the others); returns the
    kinds of due moments seen to move a contact exactly then."""
    due = next_change(scenario.journey, scenario.state.progress.values(), scenario.interactions, now=NOW)
    base = scenario.run(NOW)
    first = min(due.values(), default=NOW + timedelta(days=60))
    for t in sorted({*probes(scenario), NOW + (first - NOW) * fraction, first - US}):
        if NOW < t < first:  # (a fraction of a microsecond rounds)
            later = scenario.run(t)
            assert tiles_of(later) == tiles_of(base), t
            assert {e.key for e in later.effects} <= {e.key for e in base.effects}
    seen: Counter[str] = Counter()
    for contact_id, moment in due.items():
        assert moment > NOW
        at_due = tiles_of(scenario.run(moment))[contact_id]
        just_before = tiles_of(scenario.run(moment - US))[contact_id]
        kind, rule = kind_of(scenario, contact_id, moment), account_rule(scenario, contact_id)
        if rule is None:  # on its own: it moves exactly then
            assert just_before == tiles_of(base)[contact_id] != at_due, (contact_id, moment)
        elif rule == "any" or kind == "expiry":  # its group may go first; by then it has gone in any case
            assert at_due != tiles_of(base)[contact_id], (contact_id, moment)
        # (an `all` group does not move when one contact's interaction becomes current)
        if at_due != just_before:
            seen[kind] += 1
    return seen


@given(scenarios(), st.floats(0.01, 0.99))
@fast
def test_property_nothing_moves_before_the_due_moment_and_at_it_the_contact_does(
    scenario: Scenario, fraction: float
) -> None:
    check(scenario, fraction)


@pytest.mark.parametrize("kind", ["wait", "expiry", "interaction"])
def test_property_is_not_vacuous(kind: str) -> None:
    """Each kind of due moment is generated, and seen to move a contact (so property B was exercised for it)."""
    searching = settings(max_examples=2000, deadline=None, database=None, phases=[Phase.generate])
    find(scenarios(), lambda scenario: kind in check(scenario, 0.5), settings=searching)
