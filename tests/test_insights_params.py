"""The insights' parameter parser shared by the HTTP functions and `abm insights`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from abm.insights_params import InsightsInputError, as_params, cohort_settings, date_range, flag, path_settings

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
    ],
)
def test_bad_dates_name_the_parameter(params: dict[str, str], message: str) -> None:
    with pytest.raises(InsightsInputError, match=message):
        date_range(params, NOW)


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
