"""Flow: anchors, columns, repeats, top-N grouping, containers and span, with hand-computed paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from insights.flows import Flow, FlowSettings, flow
from insights.periods import DateRange
from insights.timeline import Event
from tests.insights.support import ev

MQL = "MarketingQualified"


def run(*events: Event, **settings: Any) -> Flow:
    return flow(sorted(events, key=lambda e: e.at), FlowSettings(**settings))


def nodes(result: Flow) -> list[tuple[int, str, int]]:
    return [(n.column, n.label, n.count) for n in result.nodes]


def links(result: Flow) -> list[tuple[int, str, str, int]]:
    return [(k.column, k.source, k.target, k.count) for k in result.links]


def test_ends_with_mql_on_content_type_follows_each_account_to_its_first_mql() -> None:
    events = [
        # A: newsletter, whitepaper, webinar, (LeadCreated has no content type: skipped), MQL -> columns 1..4
        ev("01-03", "EmailOpened", "A", content="newsletter"),
        ev("01-20", "FormSubmitted", "A", content="whitepaper"),
        ev("02-04", "EmailClicked", "A", content="webinar"),
        ev("02-10", "LeadCreated", "A"),
        ev("03-02", MQL, "A"),
        # B: whitepaper, webinar, MQL -> columns 2..4; what follows its first MQL (a second MQL too) is not shown
        ev("01-05", "FormSubmitted", "B", content="whitepaper"),
        ev("02-12", "EventRegistered", "B", content="webinar"),
        ev("03-09", MQL, "B"),
        ev("04-01", "FormSubmitted", "B", content="case_study"),
        ev("04-20", MQL, "B"),
        # C: whitepaper, case_study, MQL -> columns 2..4
        ev("02-01", "EmailOpened", "C", content="whitepaper"),
        ev("03-15", "EmailClicked", "C", content="case_study"),
        ev("04-02", MQL, "C"),
        # D never reaches MQL: not in the flow
        ev("01-07", "FormSubmitted", "D", content="whitepaper"),
    ]
    result = run(*events, dimension="content_type", ends_with=MQL)
    assert result.as_dict() == {
        "container": "account",
        "dimension": "content_type",
        "anchor": {"ends_with": MQL},
        "occurrence": "first",
        "repeats": False,
        "columns": 5,
        "limit": 10,
        "range": None,
        "paths": 3,
        "nodes": [
            {"column": 1, "label": "newsletter", "count": 1},
            {"column": 2, "label": "whitepaper", "count": 3},
            {"column": 3, "label": "webinar", "count": 2},
            {"column": 3, "label": "case_study", "count": 1},
            {"column": 4, "label": MQL, "count": 3},
        ],
        "links": [
            {"from": {"column": 1, "label": "newsletter"}, "to": {"column": 2, "label": "whitepaper"}, "count": 1},
            {"from": {"column": 2, "label": "whitepaper"}, "to": {"column": 3, "label": "webinar"}, "count": 2},
            {"from": {"column": 2, "label": "whitepaper"}, "to": {"column": 3, "label": "case_study"}, "count": 1},
            {"from": {"column": 3, "label": "webinar"}, "to": {"column": 4, "label": MQL}, "count": 2},
            {"from": {"column": 3, "label": "case_study"}, "to": {"column": 4, "label": MQL}, "count": 1},
        ],
        # A begins in column 1, B and C in column 2
        "entries": [0, 1, 2, 0, 0],
    }
    assert result.node(3, "webinar") is not None
    assert result.node(3, "webinar").entities == ("A", "B")  # type: ignore[union-attr]
    assert result.node(2, "whitepaper").entities == ("A", "B", "C")  # type: ignore[union-attr]


def test_starts_with_shows_what_follows_the_anchor_and_where_paths_exit() -> None:
    events = [
        # A: EmailOpened, FS, EmailOpened, LeadCreated, MQL -> from FS: FS, EO, LC; MQL is past column 2: no exit
        ev("01-02", "EmailOpened", "A"),
        ev("01-10", "FormSubmitted", "A"),
        ev("02-01", "EmailOpened", "A"),
        ev("02-15", "LeadCreated", "A"),
        ev("03-01", MQL, "A"),
        # B: FS, FS, MQL -> repeats collapse: FS, MQL -> exits at column 1
        ev("01-05", "FormSubmitted", "B"),
        ev("01-06", "FormSubmitted", "B"),
        ev("02-20", MQL, "B"),
        # C: FS only -> exits at column 0
        ev("03-03", "FormSubmitted", "C"),
        # D never submits a form
        ev("01-04", "EmailOpened", "D"),
    ]
    result = run(*events, starts_with="FormSubmitted", columns=3)
    assert result.paths == 3
    assert nodes(result) == [
        (0, "FormSubmitted", 3),
        (1, "EmailOpened", 1),
        (1, MQL, 1),
        (2, "LeadCreated", 1),
    ]
    assert links(result) == [
        (0, "FormSubmitted", "EmailOpened", 1),
        (0, "FormSubmitted", MQL, 1),
        (1, "EmailOpened", "LeadCreated", 1),
    ]
    as_dict = result.as_dict()
    assert as_dict["anchor"] == {"starts_with": "FormSubmitted"}
    assert as_dict["exits"] == [1, 1, 0]
    assert "entries" not in as_dict


REPEATS = [
    ev("01-02", "FormSubmitted", "A"),
    ev("01-10", "EmailOpened", "A"),
    ev("01-11", "EmailOpened", "A"),
    ev("02-01", MQL, "A"),
    ev("01-03", "FormSubmitted", "B"),
    ev("01-04", "FormSubmitted", "B"),
    ev("02-05", "EmailOpened", "B"),
]


def test_without_repeat_instances_consecutive_identical_items_collapse() -> None:
    # A: FS, EO, MQL (exits at column 2); B: FS, EO (exits at column 1)
    result = run(*REPEATS, starts_with="FormSubmitted", columns=3)
    assert nodes(result) == [(0, "FormSubmitted", 2), (1, "EmailOpened", 2), (2, MQL, 1)]
    assert links(result) == [(0, "FormSubmitted", "EmailOpened", 2), (1, "EmailOpened", MQL, 1)]
    assert result.as_dict()["exits"] == [0, 1, 1]


def test_with_repeat_instances_consecutive_identical_items_stay() -> None:
    # A: FS, EO, EO (its MQL is past column 2: no exit); B: FS, FS, EO (exits at column 2)
    result = run(*REPEATS, starts_with="FormSubmitted", columns=3, repeats=True)
    assert nodes(result) == [
        (0, "FormSubmitted", 2),
        (1, "EmailOpened", 1),
        (1, "FormSubmitted", 1),
        (2, "EmailOpened", 2),
    ]
    assert links(result) == [
        (0, "FormSubmitted", "EmailOpened", 1),
        (0, "FormSubmitted", "FormSubmitted", 1),
        (1, "EmailOpened", "EmailOpened", 1),
        (1, "FormSubmitted", "EmailOpened", 1),
    ]
    assert result.as_dict()["repeats"] is True
    assert result.as_dict()["exits"] == [0, 0, 1]


def test_a_column_keeps_its_top_items_and_groups_the_rest_as_other() -> None:
    events = [
        ev("01-02", "FormSubmitted", "A", content="whitepaper"),
        ev("01-03", "FormSubmitted", "B", content="whitepaper"),
        ev("01-04", "FormSubmitted", "C", content="webinar"),
        ev("01-05", "FormSubmitted", "D", content="case_study"),
        ev("01-06", "FormSubmitted", "E", content="ebook"),
    ] + [ev("02-01", MQL, account) for account in "ABCDE"]
    # column 0: whitepaper 2, then a tie at 1 broken alphabetically: case_study kept; ebook and webinar -> (other) 2
    result = run(*events, dimension="content_type", ends_with=MQL, columns=2, limit=2)
    assert nodes(result) == [(0, "(other)", 2), (0, "whitepaper", 2), (0, "case_study", 1), (1, MQL, 5)]
    assert links(result) == [(0, "(other)", MQL, 2), (0, "whitepaper", MQL, 2), (0, "case_study", MQL, 1)]
    assert result.node(0, "(other)").entities == ("C", "E")  # type: ignore[union-attr]
    assert result.as_dict()["entries"] == [5, 0]


def test_at_the_default_limit_a_column_shows_ten_items_and_the_rest_as_other() -> None:
    # Column 0 has 12 distinct items: "zeta" (accounts Y and Z) and a01 .. a11 (one account each, A .. K).
    singles = [(f"a{i:02d}", account) for i, account in enumerate("ABCDEFGHIJK", start=1)]
    events = [ev("01-02", "FormSubmitted", account, content=label) for label, account in singles]
    events += [ev("01-03", "FormSubmitted", account, content="zeta") for account in "YZ"]
    events += [ev("02-01", MQL, account) for account in "ABCDEFGHIJKYZ"]
    result = run(*events, dimension="content_type", ends_with=MQL, columns=2)
    assert result.settings.limit == 10
    # The top 10 by count, ties alphabetical: zeta (2, kept though last in the alphabet), a01 .. a09; a10 and a11
    # fold into (other) with 2. Nodes by count, then label: "(other)" sorts before "zeta".
    assert nodes(result) == [
        (0, "(other)", 2),
        (0, "zeta", 2),
        *((0, f"a{i:02d}", 1) for i in range(1, 10)),
        (1, MQL, 13),
    ]
    assert len([n for n in result.nodes if n.column == 0]) == 11
    assert result.node(0, "(other)").entities == ("J", "K")  # type: ignore[union-attr]
    assert result.node(0, "a10") is None
    assert links(result)[:2] == [(0, "(other)", MQL, 2), (0, "zeta", MQL, 2)]
    assert sum(k.count for k in result.links) == 13
    assert result.as_dict()["entries"] == [13, 0]


def test_a_link_to_a_grouped_item_goes_to_other() -> None:
    events = [
        ev("01-02", "FormSubmitted", "A"),
        ev("01-03", "EmailOpened", "A"),
        ev("01-02", "FormSubmitted", "B"),
        ev("01-03", "EmailClicked", "B"),
        ev("01-02", "FormSubmitted", "C"),
        ev("01-03", "EmailOpened", "C"),
    ]
    result = run(*events, starts_with="FormSubmitted", columns=2, limit=1)
    assert nodes(result) == [(0, "FormSubmitted", 3), (1, "EmailOpened", 2), (1, "(other)", 1)]
    assert links(result) == [(0, "FormSubmitted", "EmailOpened", 2), (0, "FormSubmitted", "(other)", 1)]


def test_the_number_of_columns_cuts_a_long_path_and_such_a_path_has_no_entry() -> None:
    events = [
        # A: EO, EC, FS, LC, MQL: with 2 columns only LC -> MQL shows, and A came from before column 0
        ev("01-02", "EmailOpened", "A"),
        ev("01-03", "EmailClicked", "A"),
        ev("01-04", "FormSubmitted", "A"),
        ev("01-05", "LeadCreated", "A"),
        ev("01-06", MQL, "A"),
        # B: MQL only: begins in the last column
        ev("02-01", MQL, "B"),
    ]
    two = run(*events, ends_with=MQL, columns=2)
    assert nodes(two) == [(0, "LeadCreated", 1), (1, MQL, 2)]
    assert links(two) == [(0, "LeadCreated", MQL, 1)]
    assert two.as_dict()["entries"] == [0, 1]
    one = run(*events, ends_with=MQL, columns=1)
    assert nodes(one) == [(0, MQL, 2)]
    assert one.links == ()
    assert one.as_dict()["entries"] == [1]


# A reaches MQL twice: EO, MQL, WV, FS, MQL. B once: FS, MQL.
TWICE = [
    ev("01-02", "EmailOpened", "A"),
    ev("01-05", MQL, "A"),
    ev("01-10", "WebsiteVisited", "A"),
    ev("01-12", "FormSubmitted", "A"),
    ev("01-20", MQL, "A"),
    ev("01-03", "FormSubmitted", "B"),
    ev("01-04", MQL, "B"),
]


def test_ends_with_at_the_first_or_the_last_occurrence() -> None:
    # first: A's path up to its first MQL is EO, MQL (begins in column 1); B's is FS, MQL (column 1)
    first = run(*TWICE, ends_with=MQL, columns=3)
    assert nodes(first) == [(1, "EmailOpened", 1), (1, "FormSubmitted", 1), (2, MQL, 2)]
    assert links(first) == [(1, "EmailOpened", MQL, 1), (1, "FormSubmitted", MQL, 1)]
    assert first.as_dict()["entries"] == [0, 2, 0]
    # last: A's path up to its second MQL is WV, FS, MQL, cut at column 0 (it came from EO, MQL: no entry)
    last = run(*TWICE, ends_with=MQL, columns=3, occurrence="last")
    assert nodes(last) == [(0, "WebsiteVisited", 1), (1, "FormSubmitted", 2), (2, MQL, 2)]
    assert links(last) == [(0, "WebsiteVisited", "FormSubmitted", 1), (1, "FormSubmitted", MQL, 2)]
    assert last.as_dict()["entries"] == [0, 1, 0]
    assert last.as_dict()["occurrence"] == "last"


def test_starts_with_at_the_first_or_the_last_occurrence() -> None:
    # first: A goes on from its first MQL to WV and past column 1 (no exit); B exits at its MQL
    first = run(*TWICE, starts_with=MQL, columns=2)
    assert nodes(first) == [(0, MQL, 2), (1, "WebsiteVisited", 1)]
    assert first.as_dict()["exits"] == [1, 0]
    # last: nothing follows A's second MQL, so both exit in column 0
    last = run(*TWICE, starts_with=MQL, columns=2, occurrence="last")
    assert nodes(last) == [(0, MQL, 2)]
    assert last.links == ()
    assert last.as_dict()["exits"] == [2, 0]


ACCOUNTLESS = [
    ev("01-01", "EmailOpened", "A", contact="c1"),
    ev("01-02", "FormSubmitted", "A", contact="c1"),
    ev("01-03", MQL, "A", contact="c1"),
    # c2's contact has no account: left out of an account container, a path of its own in a contact container
    ev("01-01", "FormSubmitted", None, contact="c2"),
    ev("01-02", MQL, None, contact="c2"),
]


def test_events_without_an_account_are_left_out_of_an_account_container() -> None:
    result = run(*ACCOUNTLESS, ends_with=MQL, columns=3)
    assert result.paths == 1
    assert nodes(result) == [(0, "EmailOpened", 1), (1, "FormSubmitted", 1), (2, MQL, 1)]
    assert result.as_dict()["entries"] == [1, 0, 0]


def test_events_without_an_account_count_in_a_contact_container() -> None:
    result = run(*ACCOUNTLESS, ends_with=MQL, columns=3, container="contact")
    assert result.paths == 2
    assert nodes(result) == [(0, "EmailOpened", 1), (1, "FormSubmitted", 2), (2, MQL, 2)]
    assert result.node(1, "FormSubmitted").entities == ("c1", "c2")  # type: ignore[union-attr]
    assert result.as_dict()["entries"] == [1, 1, 0]
    assert result.as_dict()["container"] == "contact"


def test_a_contact_container_follows_each_contact_on_its_own() -> None:
    events = [
        ev("01-01", "EmailOpened", "A", contact="c1"),
        ev("01-02", "FormSubmitted", "A", contact="c2"),
        ev("01-03", "FormSubmitted", "A", contact="c1"),
        ev("01-04", MQL, "A", contact="c2"),
    ]
    # the account: EO, FS, FS, MQL -> EO, FS, MQL
    account = run(*events, ends_with=MQL, columns=3)
    assert nodes(account) == [(0, "EmailOpened", 1), (1, "FormSubmitted", 1), (2, MQL, 1)]
    # c1 never reaches MQL; c2: FS, MQL
    contact = run(*events, ends_with=MQL, columns=3, container="contact")
    assert contact.paths == 1
    assert nodes(contact) == [(1, "FormSubmitted", 1), (2, MQL, 1)]
    assert contact.node(2, MQL).entities == ("c2",)  # type: ignore[union-attr]


def test_events_outside_the_span_are_ignored() -> None:
    events = [
        ev("01-15", "FormSubmitted", "A"),  # before the span
        ev("02-10", "FormSubmitted", "A"),
        ev("03-01", "EmailOpened", "A"),
        ev("04-01", MQL, "A"),  # at the span's end: outside (half-open)
        ev("01-05", "FormSubmitted", "B"),  # before the span: B never reaches the anchor in it
        ev("02-05", "EmailOpened", "B"),
    ]
    span = DateRange(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    within = run(*events, starts_with="FormSubmitted", columns=3, span=span)
    assert within.paths == 1
    assert nodes(within) == [(0, "FormSubmitted", 1), (1, "EmailOpened", 1)]
    assert within.as_dict()["exits"] == [0, 1, 0]
    assert within.as_dict()["range"] == {"from": "2026-02-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
    # without the span: A: FS, EO, MQL (exit at 2), B: FS, EO (exit at 1)
    everything = run(*events, starts_with="FormSubmitted", columns=3)
    assert nodes(everything) == [(0, "FormSubmitted", 2), (1, "EmailOpened", 2), (2, MQL, 1)]
    assert everything.as_dict()["exits"] == [0, 1, 1]


def test_the_anchor_matches_a_content_type_as_well_as_an_event_type() -> None:
    events = [
        ev("01-01", "EmailOpened", "A", content="newsletter"),
        ev("01-02", "FormSubmitted", "A", content="webinar"),
        ev("01-03", "EmailOpened", "B", content="ebook"),
        ev("01-04", "webinar", "B"),  # an event whose type is the anchor value
    ]
    result = run(*events, dimension="content_type", ends_with="webinar", columns=2)
    assert nodes(result) == [(0, "ebook", 1), (0, "newsletter", 1), (1, "webinar", 2)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "exactly one anchor"),
        ({"starts_with": "FormSubmitted", "ends_with": MQL}, "exactly one anchor"),
        ({"starts_with": ""}, "must not be empty"),
        ({"ends_with": MQL, "columns": 6}, "columns must be 1..5"),
        ({"ends_with": MQL, "columns": 0}, "columns must be 1..5"),
        ({"ends_with": MQL, "limit": 11}, "limit"),
        ({"ends_with": MQL, "limit": 0}, "limit"),
        ({"ends_with": MQL, "dimension": "campaign"}, "dimension"),
        ({"ends_with": MQL, "container": "opportunity"}, "container"),
        ({"ends_with": MQL, "occurrence": "every"}, "occurrence must be 'first' or 'last'"),
    ],
)
def test_invalid_settings_are_refused_with_the_reason(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlowSettings(**settings)
