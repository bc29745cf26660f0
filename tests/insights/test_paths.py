"""Journey path: reaching steps in order, percent of start or previous, fallout, one account's own path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from insights.paths import JourneyPath, PathSettings, journey_path
from insights.periods import DateRange
from insights.timeline import Event
from tests.insights.support import ev

FS, LC, MQL, OC = "FormSubmitted", "LeadCreated", "MarketingQualified", "OpportunityCreated"
STEPS = (FS, LC, MQL, OC)


def run(*events: Event, steps: tuple[str, ...] = STEPS, **settings: Any) -> JourneyPath:
    return journey_path(sorted(events, key=lambda e: e.at), PathSettings(steps=steps, **settings))


def nodes(result: JourneyPath) -> list[tuple[str, int, float | None, int | None, float | None]]:
    return [(n.step, n.reached, n.percent, n.fallout, n.fallout_percent) for n in result.nodes]


FUNNEL = [
    # A reaches all four steps
    ev("01-05", FS, "A"),
    ev("01-10", LC, "A"),
    ev("02-03", MQL, "A"),
    ev("03-01", OC, "A"),
    # B reaches FS, LC, MQL
    ev("01-07", FS, "B"),
    ev("02-01", LC, "B"),
    ev("03-02", MQL, "B"),
    # C: its lead was created BEFORE its form: only FS counts, and its MQL cannot count without LC after FS
    ev("01-03", LC, "C"),
    ev("02-10", FS, "C"),
    ev("03-05", MQL, "C"),
    # D reaches FS only; E never submits a form
    ev("02-14", FS, "D"),
    ev("01-20", "EmailOpened", "E"),
]


def test_percent_of_start_and_fallout_per_node() -> None:
    # reached: FS 4 (A B C D), LC 2 (A B), MQL 2 (A B), OC 1 (A)
    # percent of start: 4/4, 2/4, 2/4, 1/4; fallout: 4-2, 2-2, 2-1, none; fallout percent: 2/4, 0/2, 1/2
    result = run(*FUNNEL)
    assert nodes(result) == [
        (FS, 4, 100.0, 2, 50.0),
        (LC, 2, 50.0, 0, 0.0),
        (MQL, 2, 50.0, 1, 50.0),
        (OC, 1, 25.0, None, None),
    ]
    assert result.nodes[1].entities == ("A", "B")
    assert result.nodes[0].entities == ("A", "B", "C", "D")


def test_percent_of_previous_node() -> None:
    # 4/4, 2/4, 2/2, 1/2; fallout does not depend on the percentage base
    result = run(*FUNNEL, percent_of="previous")
    assert nodes(result) == [
        (FS, 4, 100.0, 2, 50.0),
        (LC, 2, 50.0, 0, 0.0),
        (MQL, 2, 100.0, 1, 50.0),
        (OC, 1, 50.0, None, None),
    ]
    assert result.as_dict()["percent_of"] == "previous"


def test_as_dict_without_an_account_has_no_path() -> None:
    assert run(*FUNNEL, steps=(FS, OC)).as_dict() == {
        "container": "account",
        "steps": [FS, OC],
        "percent_of": "start",
        "account": None,
        "range": None,
        "nodes": [
            {"step": FS, "reached": 4, "percent": 100.0, "fallout": 3, "fallout_percent": 75.0},
            {"step": OC, "reached": 1, "percent": 25.0, "fallout": None, "fallout_percent": None},
        ],
        "path": None,
    }


def test_a_step_only_counts_after_the_step_before_it() -> None:
    # the lead is created before the form: LC is not reached; a second LC after the form is
    before = [ev("01-03", LC, "A"), ev("02-10", FS, "A")]
    assert nodes(run(*before, steps=(FS, LC))) == [(FS, 1, 100.0, 1, 100.0), (LC, 0, 0.0, None, None)]
    after = [*before, ev("03-01", LC, "A")]
    assert nodes(run(*after, steps=(FS, LC))) == [(FS, 1, 100.0, 0, 0.0), (LC, 1, 100.0, None, None)]


def test_consecutive_steps_of_the_same_type_need_two_events() -> None:
    events = [
        ev("01-02", FS, "A"),
        ev("02-01", OC, "A"),  # one form: reaches the first FS only
        ev("01-03", FS, "B"),
        ev("01-20", FS, "B"),
        ev("02-02", OC, "B"),  # two forms, then the opportunity
    ]
    # reached 2, 1, 1; percents 100, 1/2 = 50, 1/2 = 50; fallout 1 (1/2), 0 (0/1)
    assert nodes(run(*events, steps=(FS, FS, OC))) == [
        (FS, 2, 100.0, 1, 50.0),
        (FS, 1, 50.0, 0, 0.0),
        (OC, 1, 50.0, None, None),
    ]


def test_percentages_round_to_one_decimal() -> None:
    events = [ev("01-02", FS, "A"), ev("01-03", LC, "A"), ev("01-02", FS, "B"), ev("01-02", FS, "C")]
    # 1/3 = 33.3; fallout 2/3 = 66.7
    assert nodes(run(*events, steps=(FS, LC))) == [(FS, 3, 100.0, 2, 66.7), (LC, 1, 33.3, None, None)]


def test_nobody_at_the_start_gives_no_percentages() -> None:
    result = run(ev("01-02", "EmailOpened", "A"), steps=(FS, LC), percent_of="previous")
    assert nodes(result) == [(FS, 0, None, 0, None), (LC, 0, None, None, None)]


ACCOUNTLESS = [
    ev("01-02", FS, "A", contact="c1"),
    ev("01-03", LC, "A", contact="c1"),
    ev("01-02", FS, None, contact="c2"),  # a contact without an account
    ev("01-04", LC, None, contact="c2"),
    ev("01-05", FS, "A", contact="c3"),
]


def test_events_without_an_account_are_left_out_of_an_account_container() -> None:
    assert nodes(run(*ACCOUNTLESS, steps=(FS, LC))) == [(FS, 1, 100.0, 0, 0.0), (LC, 1, 100.0, None, None)]


def test_a_contact_container_counts_contacts_including_those_without_an_account() -> None:
    # c1 and c2 reach both steps, c3 only the form
    result = run(*ACCOUNTLESS, steps=(FS, LC), container="contact")
    assert nodes(result) == [(FS, 3, 100.0, 1, 33.3), (LC, 2, 66.7, None, None)]
    assert result.nodes[1].entities == ("c1", "c2")
    assert result.as_dict()["container"] == "contact"


def test_events_outside_the_span_are_ignored() -> None:
    events = [
        ev("01-20", FS, "A"),  # before the span: A's lead in February does not count
        ev("02-10", LC, "A"),
        ev("02-03", FS, "B"),
        ev("03-05", LC, "B"),
        ev("02-05", FS, "C"),
        ev("04-01", LC, "C"),  # at the span's end: outside (half-open)
    ]
    span = DateRange(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    result = run(*events, steps=(FS, LC), span=span)
    assert nodes(result) == [(FS, 2, 100.0, 1, 50.0), (LC, 1, 50.0, None, None)]
    assert result.as_dict()["range"] == {"from": "2026-02-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
    assert nodes(run(*events, steps=(FS, LC))) == [(FS, 3, 100.0, 0, 0.0), (LC, 3, 100.0, None, None)]


def test_an_accounts_own_path_runs_from_the_first_step_to_the_last() -> None:
    events = [
        ev("01-01", "EmailOpened", "A", contact="c1", content="newsletter"),  # before its first step: not shown
        ev("01-05", FS, "A", contact="c1", content="whitepaper"),
        ev("01-10", "EmailOpened", "A", contact="c2", content="newsletter"),
        ev("01-12", LC, "A", contact="c1"),
        ev("02-02", MQL, "A", contact="c1"),
        ev("03-01", OC, "A", contact="c2"),
        ev("03-05", "EmailOpened", "A", contact="c2"),  # after its last step: not shown
        ev("01-06", FS, "B", contact="c9"),  # another account: not counted
    ]
    result = run(*events, account="A")
    assert nodes(result) == [
        (FS, 1, 100.0, 0, 0.0),
        (LC, 1, 100.0, 0, 0.0),
        (MQL, 1, 100.0, 0, 0.0),
        (OC, 1, 100.0, None, None),
    ]
    as_dict = result.as_dict()
    assert as_dict["account"] == "A"
    assert as_dict["path"] == {
        "events": [
            {
                "at": "2026-01-05T10:00:00Z",
                "type": FS,
                "milestone": False,
                "contact": "c1",
                "content_type": "whitepaper",
            },
            {
                "at": "2026-01-10T10:00:00Z",
                "type": "EmailOpened",
                "milestone": False,
                "contact": "c2",
                "content_type": "newsletter",
            },
            {"at": "2026-01-12T10:00:00Z", "type": LC, "milestone": True, "contact": "c1", "content_type": None},
            {"at": "2026-02-02T10:00:00Z", "type": MQL, "milestone": True, "contact": "c1", "content_type": None},
            {"at": "2026-03-01T10:00:00Z", "type": OC, "milestone": True, "contact": "c2", "content_type": None},
        ],
        "reached": {
            FS: "2026-01-05T10:00:00Z",
            LC: "2026-01-12T10:00:00Z",
            MQL: "2026-02-02T10:00:00Z",
            OC: "2026-03-01T10:00:00Z",
        },
        "converted": True,
    }


def test_an_account_that_stops_short_shows_its_path_to_its_last_event() -> None:
    events = [
        ev("01-03", FS, "B"),
        ev("02-01", LC, "B"),
        ev("03-01", MQL, "B"),
        ev("03-20", "EmailOpened", "B"),
    ]
    path = run(*events, account="B").as_dict()["path"]
    assert [(e["at"][:10], e["type"]) for e in path["events"]] == [
        ("2026-01-03", FS),
        ("2026-02-01", LC),
        ("2026-03-01", MQL),
        ("2026-03-20", "EmailOpened"),
    ]
    assert path["reached"] == {FS: "2026-01-03T10:00:00Z", LC: "2026-02-01T10:00:00Z", MQL: "2026-03-01T10:00:00Z"}
    assert path["converted"] is False


def test_an_account_that_never_starts_has_an_empty_path() -> None:
    result = run(ev("01-03", LC, "E"), ev("01-04", FS, "A"), account="E")
    assert nodes(result)[0] == (FS, 0, None, 0, None)
    assert result.as_dict()["path"] == {"events": [], "reached": {}, "converted": False}


def test_a_repeated_step_is_numbered_in_the_accounts_reached_times() -> None:
    events = [ev("01-03", FS, "B"), ev("01-20", FS, "B"), ev("02-02", OC, "B")]
    path = run(*events, steps=(FS, FS, OC), account="B").as_dict()["path"]
    assert path["reached"] == {
        FS: "2026-01-03T10:00:00Z",
        f"{FS} (2)": "2026-01-20T10:00:00Z",
        OC: "2026-02-02T10:00:00Z",
    }
    assert path["converted"] is True
    assert len(path["events"]) == 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"steps": (FS,)}, "2..10 steps"),
        ({"steps": (FS,) * 11}, "2..10 steps"),
        ({"steps": [FS, LC]}, "tuple"),
        ({"steps": (FS, "")}, "non-empty"),
        ({"steps": (FS, LC), "percent_of": "total"}, "percent_of"),
        ({"steps": (FS, LC), "container": "opportunity"}, "container"),
        ({"steps": (FS, LC), "account": ""}, "account"),
    ],
)
def test_invalid_settings_are_refused_with_the_reason(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PathSettings(**settings)
