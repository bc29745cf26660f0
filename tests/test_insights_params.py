"""The insights' parameter parser shared by the HTTP functions and `abm insights`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from abm.views.params import (
    InsightsInputError,
    as_params,
    cohort_settings,
    date_range,
    flag,
    flow_settings,
    path_settings,
)
from insights.cohorts import cohort_table

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
KNOWN = {"FormSubmitted", "OpportunityCreated", "OpportunityWon"}


def test_days_are_inclusive_datetimes_exact_and_the_default_is_the_last_twelve_months() -> None:
    days = date_range({"from": "2026-01-01", "to": "2026-01-31"}, NOW)
    assert (days.start, days.end) == (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    exact = date_range({"from": "2026-01-01T06:00:00Z", "to": "2026-01-02T00:00:00+02:00"}, NOW)
    assert exact.end == datetime(2026, 1, 1, 22, tzinfo=UTC)
    default = date_range({}, NOW)
    assert default.end == NOW and (default.end - default.start).days == 365


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-13-01"}, "from: '2026-13-01' is not a date"),
        ({"to": "2026-01-01T00:00:00"}, "has no time zone"),
        ({"from": "2026-02-01", "to": "2026-01-31"}, "must start before it ends"),
        # the day after 9999-12-31 and a year before 0001-01-05 cannot be computed (OverflowError before)
        ({"to": "9999-12-31"}, r"to: '9999-12-31' is outside the dates insights cover \(1753-01-01 .. 9998-12-31\)"),
        ({"to": "0001-01-05"}, "to: '0001-01-05' is outside"),
        ({"from": "0001-01-01T00:30:00+01:00"}, "from: .* is outside"),  # before year 1 in UTC
        ({"from": "1752-12-31"}, "from: '1752-12-31' is outside"),  # before Dataverse's earliest date
        ({"to": "9999-06-01T00:00:00Z"}, "to: .* is outside"),  # no room for a period after it
        ({"from": ""}, "from: empty"),  # not the default range, which leaving it out gives
        ({"to": " "}, "to: empty"),
    ],
)
def test_bad_dates_name_the_parameter(params: dict[str, str], message: str) -> None:
    with pytest.raises(InsightsInputError, match=message):
        date_range(params, NOW)


def test_the_bounds_themselves_are_accepted_and_a_default_start_stays_inside_them() -> None:
    widest = date_range({"from": "1753-01-01", "to": "9998-12-31"}, NOW)
    assert (widest.start, widest.end) == (datetime(1753, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
    early = date_range({"to": "1753-01-31"}, NOW)  # twelve months before would be in 1752
    assert (early.start, early.end) == (datetime(1753, 1, 1, tzinfo=UTC), datetime(1753, 2, 1, tzinfo=UTC))
    # the last year's cohorts by quarter: every period of the range and every cell's date can be computed
    params = {"include": "FormSubmitted", "return": "FormSubmitted", "granularity": "quarter"}
    last = cohort_settings({**params, "from": "9998-01-01", "to": "9998-12-31"}, NOW, KNOWN)
    table = cohort_table([], last).as_dict()
    assert [c["label"] for c in table["cohorts"]] == ["9998-Q1", "9998-Q2", "9998-Q3", "9998-Q4"]
    assert table["cohorts"][0]["cells"][-1]["period"] == "9998-10-01"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # MetricTest refused 0 with a plain ValueError, built outside the error wrapper
        ({"include": "OpportunityCreated>=0"}, r"include: 'OpportunityCreated>=0': N of METRIC>=N must be from 1"),
        ({"include": "OpportunityCreated>=1000001"}, "must be from 1 to 1000000"),
        ({"include": "OpportunityCreated>=" + "9" * 5000}, "must be from 1 to 1000000"),  # int() refuses 4,300+ digits
        ({"include": "OpportunityCreated>=\u00b2"}, "is not METRIC or METRIC>=N"),  # a superscript two
        ({"include": "OpportunityCreated>=\u0663"}, "is not METRIC or METRIC>=N"),  # an Arabic-Indic three
        ({"include": "OpportunityCreated>=-1"}, "is not METRIC or METRIC>=N"),
        ({"granularity": "day", "from": "1753-01-01", "to": "9998-12-31"}, "more than 400 days"),
    ],
)
def test_bad_cohort_parameters_are_input_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(InsightsInputError, match=message):
        cohort_settings({"include": "FormSubmitted", "return": "OpportunityWon", **params}, NOW, KNOWN)


def test_an_opportunity_container_takes_only_opportunity_milestones() -> None:
    ok = cohort_settings(
        {"include": "OpportunityCreated", "return": "OpportunityWon", "container": "opportunity"}, NOW, KNOWN
    )
    assert ok.container == "opportunity"
    # only opportunity milestones carry an opportunity id: anything else would give an all-zero table
    with pytest.raises(
        InsightsInputError,
        match="container: FormSubmitted cannot be counted per opportunity; an opportunity container counts only"
        " OpportunityCreated, OpportunityWon, OpportunityLost",
    ):
        cohort_settings(
            {"include": "OpportunityCreated", "return": "FormSubmitted", "container": "opportunity"}, NOW, KNOWN
        )
    with pytest.raises(InsightsInputError, match="container: FormSubmitted, EmailOpened cannot be counted"):
        cohort_settings(
            {
                "include": "FormSubmitted,OpportunityCreated",
                "return": "EmailOpened,FormSubmitted",
                "container": "opportunity",
            },
            NOW,
            KNOWN | {"EmailOpened"},
        )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"columns": "\u00b2"},
            r"columns: '\u00b2' is not a whole number from 1 to 5",
        ),  # isdigit() is True, int() fails
        ({"columns": "\u0663"}, "columns: .* is not a whole number"),  # int() would read 3
        ({"limit": "0"}, "limit: '0' is not a whole number from 1 to 10"),
        ({"limit": "1" + "0" * 5000}, "limit: .* is not a whole number"),
        ({"occurrence": "middle"}, "occurrence: 'middle' is not one of first, last"),
        ({"to": "9999-12-31"}, "to: '9999-12-31' is outside"),
    ],
)
def test_bad_flow_parameters_are_input_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(InsightsInputError, match=message):
        flow_settings({"ends_with": "FormSubmitted", **params}, NOW, KNOWN)


def test_flows_take_the_first_occurrence_by_default_or_the_last() -> None:
    assert flow_settings({"ends_with": "FormSubmitted"}, NOW, KNOWN).occurrence == "first"
    assert flow_settings({"ends_with": "FormSubmitted", "occurrence": " Last "}, NOW, KNOWN).occurrence == "last"
    assert flow_settings({"ends_with": "FormSubmitted", "columns": " 03 "}, NOW, KNOWN).columns == 3


def test_criteria_take_metric_and_threshold_and_a_match_rule() -> None:
    settings = cohort_settings(
        {"include": "OpportunityCreated>=2, FormSubmitted", "include_match": "any", "return": "OpportunityWon"},
        NOW,
        KNOWN,
    )
    assert [(m.metric, m.at_least) for m in settings.inclusion.metrics] == [
        ("OpportunityCreated", 2),
        ("FormSubmitted", 1),
    ]
    assert settings.inclusion.match == "any" and settings.returning.match == "all"
    assert (settings.granularity, settings.container, settings.churn, settings.rolling) == (
        "month",
        "account",
        False,
        False,
    )
    with pytest.raises(InsightsInputError, match=r"include: cohort criteria need 1 to 3 metrics \(got 4\)"):
        cohort_settings(
            {"include": "FormSubmitted,FormSubmitted,FormSubmitted,FormSubmitted", "return": "FormSubmitted"},
            NOW,
            KNOWN,
        )


def test_flags_accept_the_usual_spellings_and_reject_others() -> None:
    assert flag({"rolling": ""}, "rolling") and flag({"rolling": "True"}, "rolling")
    assert not flag({}, "rolling") and not flag({"rolling": "no"}, "rolling")
    with pytest.raises(InsightsInputError, match="rolling: 'maybe' is not true or false"):
        flag({"rolling": "maybe"}, "rolling")


def test_steps_and_the_account_of_a_path() -> None:
    settings = path_settings({"steps": "FormSubmitted, OpportunityCreated", "account": " ABC "}, NOW, KNOWN)
    assert settings.steps == ("FormSubmitted", "OpportunityCreated") and settings.account == "abc"
    with pytest.raises(InsightsInputError, match="steps: unknown event type 'Nope'"):
        path_settings({"steps": "FormSubmitted,Nope"}, NOW, KNOWN)


def test_command_line_values_become_query_parameters() -> None:
    assert as_params({"rolling": True, "repeats": False, "columns": 3, "to": None, "from": "2026-01-01"}) == {
        "rolling": "true",
        "columns": "3",
        "from": "2026-01-01",
    }
