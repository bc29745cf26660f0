"""The insights endpoints end to end over real HTTP: `abm serve`'s host in front of the Function app, a mirror filled
by a full sync from the emulator holding the hand-computed tenant of `tests/insights_tenant.py`.

The expected numbers are worked out by hand from that tenant's docstring and rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import function_app
from abm import bootstrap
from abm.bootstrap import Runtime
from abm.settings import Settings, function_keys
from abm_command.localhost import LocalHost
from tests import insights_tenant as t

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "api-key-3"
JAN_APR = {"from": "2026-01-01", "to": "2026-04-30"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalHost, Runtime]]:
    values = {
        "DATAVERSE_URL": "http://127.0.0.1:9",  # never called: insights read the mirror
        "DATAVERSE_AUTH": "none",
        "ABM_STATE_STORE": "sqlite",
        "ABM_SQLITE_PATH": str(tmp_path_factory.mktemp("insights") / "state.sqlite"),
        "ABM_API_KEY": API_KEY,
    }
    with pytest.MonkeyPatch.context() as env:
        for name, value in values.items():
            env.setenv(name, value)
        bootstrap.reset()
        runtime = bootstrap.shared_runtime()
        t.mirror_into(runtime.store, runtime.setup)
        keys = function_keys(Settings.from_env(values))
        with LocalHost(function_app.app, keys=keys, app_root=ROOT, settings=values) as host:
            yield host, runtime
        bootstrap.reset()


def get(host: LocalHost, route: str, key: str | None = API_KEY, **params: str) -> requests.Response:
    return requests.get(
        f"{host.url}/api/insights/{route}", params={**params, **({"code": key} if key else {})}, timeout=30
    )


def ok(host: LocalHost, route: str, **params: str) -> dict[str, Any]:
    response = get(host, route, **params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()  # type: ignore[no-any-return]


def test_account_kpis_count_every_contact_of_the_account_in_the_range(served: Any) -> None:
    host, _ = served
    body = ok(host, f"accounts/{t.A}", **JAN_APR)
    assert body["account"] == {"id": t.A, "name": "Contoso <Ltd> & Co"}
    assert body["contacts"] == 2
    assert body["range"] == {"from": "2026-01-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"}  # `to` day included
    # a1 and a2: two emails sent, a1 opened, a2 clicked; a1's form and visit; a2's event registration; lead A
    # created and marketing qualified; opportunity A created and won; a1 and a2 entered abm-nurture on Feb 3.
    assert body["kpis"] == {
        "emails_sent": 2,
        "emails_delivered": 0,
        "emails_opened": 1,
        "emails_clicked": 1,
        "website_visits": 1,
        "form_submissions": 1,
        "event_registrations": 1,
        "other_interactions": 0,  # every interaction of A has a KPI of its own
        "journeys_entered": 1,
        "leads": 1,
        "leads_sales_ready": 1,
        "opportunities_created": 1,
        "opportunities_won": 1,
        "opportunities_lost": 0,
        "opportunities_open": 0,
    }
    assert body["journeys"] == ["abm-nurture"]
    # lead A's scores by two models, each on its own scale: one best score per model
    assert body["best_scores"] == {
        "account-fit": {"score": 75, "grade": "A", "lead": t.LEAD_A},
        "contact-engagement": {"score": 40, "grade": "C", "lead": t.LEAD_A},
    }


def test_account_kpis_of_february_only(served: Any) -> None:
    host, _ = served
    kpis = ok(host, f"accounts/{t.A}", **{"from": "2026-02-01", "to": "2026-02-28"})["kpis"]
    # a1's visit on Feb 2, lead A qualified Feb 10, opportunity A created Feb 20; the journey entry of Feb 3
    assert {k: v for k, v in kpis.items() if v} == {
        "website_visits": 1,
        "leads_sales_ready": 1,
        "opportunities_created": 1,
        "journeys_entered": 1,
    }
    b = ok(host, f"accounts/{t.B}", **{"from": "2026-03-01", "to": "2026-03-31"})
    # b1's visit Mar 3, opportunity B created Mar 10 and open; lead B is qualified, so no open lead is scored
    assert {k: v for k, v in b["kpis"].items() if v} == {
        "website_visits": 1,
        "opportunities_created": 1,
        "opportunities_open": 1,
    }
    assert b["best_scores"] == {}


def test_an_opportunity_linked_only_through_a_contact_counts_for_the_contacts_account(served: Any) -> None:
    host, _ = served
    may = {"from": "2026-05-01", "to": "2026-05-31"}
    body = ok(host, f"accounts/{t.D}", **may)
    # opportunity D has no parent account, only contact d1 of account D: the mirror keeps it in D's partition
    assert body["contacts"] == 1
    assert {k: v for k, v in body["kpis"].items() if v} == {"opportunities_created": 1, "opportunities_open": 1}
    # the account's KPIs agree with the path through the whole mirror: D reached OpportunityCreated, not won
    path = ok(host, "paths", steps="OpportunityCreated,OpportunityWon", account=t.D, **may)
    assert [(n["step"], n["reached"]) for n in path["nodes"]] == [("OpportunityCreated", 1), ("OpportunityWon", 0)]
    assert [e["type"] for e in path["path"]["events"]] == ["OpportunityCreated"]


def test_journey_tile_counts_for_one_account_and_for_all(served: Any) -> None:
    host, _ = served
    one = ok(host, "journeys/abm-nurture", account=t.B)
    assert one["account"] == t.B and one["target"] == "account"
    tiles = {tile["id"]: tile for tile in one["tiles"]}
    assert tiles["opened"]["kind"] == "trigger"
    assert tiles["opened"]["counts"]["entered"] == 1 and tiles["opened"]["counts"]["false"] == 1
    assert tiles["call"]["counts"]["entered"] == 0
    everyone = ok(host, "journeys/abm-nurture")
    assert everyone["account"] is None
    assert {t["id"]: t["counts"]["entered"] for t in everyone["tiles"]}["opened"] == 3


def test_monthly_cohorts_of_opportunities_created_returning_as_won_fixed_and_rolling(served: Any) -> None:
    host, _ = served
    params = {"include": "OpportunityCreated>=1", "return": "OpportunityWon>=1", "container": "opportunity", **JAN_APR}
    fixed = ok(host, "cohorts", **params)
    rows = {c["label"]: c for c in fixed["cohorts"]}
    # Jan: opportunity C (lost, never won); Feb: A (won in April, two months on); Mar: B (open); Apr: none
    assert [(c["label"], c["included"]) for c in fixed["cohorts"]] == [
        ("2026-01", 1),
        ("2026-02", 1),
        ("2026-03", 1),
        ("2026-04", 0),
    ]
    assert [(c["count"], c["percent"]) for c in rows["2026-02"]["cells"]] == [(0, 0.0), (1, 100.0)]
    assert [c["count"] for c in rows["2026-01"]["cells"]] == [0, 0, 0]
    rolling = ok(host, "cohorts", rolling="true", **params)
    # rolling: A did not come back in March, so it is not counted in April either, and April's base is 0
    feb = {c["label"]: c for c in rolling["cohorts"]}["2026-02"]
    assert [(c["count"], c["base"], c["percent"]) for c in feb["cells"]] == [(0, 1, 0.0), (0, 0, None)]
    churn = ok(host, "cohorts", type="churn", **params)
    assert [c["percent"] for c in {c["label"]: c for c in churn["cohorts"]}["2026-02"]["cells"]] == [100.0, 0.0]


def test_account_cohorts_leave_out_contacts_without_an_account(served: Any) -> None:
    host, _ = served
    body = ok(host, "cohorts", include="FormSubmitted", **{"return": "WebsiteVisited>=1"}, **JAN_APR)
    rows = {c["label"]: c for c in body["cohorts"]}
    # Jan: A (a1's form); Feb: B (b1's form; x1's form has no account). A visits in Feb, B in Mar.
    assert rows["2026-01"]["included"] == 1 and rows["2026-02"]["included"] == 1
    assert [c["percent"] for c in rows["2026-01"]["cells"]] == [100.0, 0.0, 0.0]
    assert [c["percent"] for c in rows["2026-02"]["cells"]] == [100.0, 0.0]
    contacts = ok(
        host, "cohorts", include="FormSubmitted", container="contact", **{"return": "WebsiteVisited"}, **JAN_APR
    )
    assert {c["label"]: c["included"] for c in contacts["cohorts"]}["2026-02"] == 2  # b1 and x1


def test_flow_ending_with_marketing_qualified(served: Any) -> None:
    host, _ = served
    body = ok(host, "flows", ends_with="MarketingQualified", **JAN_APR)
    # only account A qualified: EmailSent x2 (one node: repeats off), EmailOpened, EmailClicked, FormSubmitted,
    # LeadCreated, WebsiteVisited, MarketingQualified; five columns keep the last five, so the path is cut off
    assert body["paths"] == 1
    assert [(n["column"], n["label"]) for n in body["nodes"]] == [
        (0, "EmailClicked"),
        (1, "FormSubmitted"),
        (2, "LeadCreated"),
        (3, "WebsiteVisited"),
        (4, "MarketingQualified"),
    ]
    assert len(body["links"]) == 4
    assert body["entries"] == [0, 0, 0, 0, 0]
    repeats = ok(host, "flows", ends_with="MarketingQualified", repeats="true", columns="3", **JAN_APR)
    assert [n["label"] for n in repeats["nodes"]] == ["LeadCreated", "WebsiteVisited", "MarketingQualified"]
    content = ok(host, "flows", ends_with="MarketingQualified", dimension="content_type", **JAN_APR)
    # content types before the qualification: newsletter x3 (one node), webinar, whitepaper, pricing page
    assert [n["label"] for n in content["nodes"]] == [
        "newsletter",
        "webinar",
        "whitepaper",
        "pricing page",
        "MarketingQualified",
    ]
    assert content["entries"] == [1, 0, 0, 0, 0]


def test_a_flow_anchored_at_the_first_or_the_last_occurrence(served: Any) -> None:
    host, _ = served
    params = {"starts_with": "webinar", "dimension": "content_type", **JAN_APR}
    # A's content types: newsletter (x3, one node), webinar (Jan 7), whitepaper, pricing page, webinar (Mar 1)
    first = ok(host, "flows", **params)
    assert first["occurrence"] == "first"
    assert [(n["column"], n["label"]) for n in first["nodes"]] == [
        (0, "webinar"),
        (1, "whitepaper"),
        (2, "pricing page"),
        (3, "webinar"),
    ]
    assert first["exits"] == [0, 0, 0, 1, 0]
    last = ok(host, "flows", occurrence="last", **params)
    assert last["occurrence"] == "last"
    assert [(n["column"], n["label"], n["count"]) for n in last["nodes"]] == [(0, "webinar", 1)]
    assert last["exits"] == [1, 0, 0, 0, 0]


def test_journey_path_with_conversion_fallout_and_one_accounts_path(served: Any) -> None:
    host, _ = served
    body = ok(host, "paths", steps="FormSubmitted,LeadCreated,OpportunityCreated", account=t.A, **JAN_APR)
    assert body["account"] == t.A
    assert [(n["step"], n["reached"]) for n in body["nodes"]] == [
        ("FormSubmitted", 1),
        ("LeadCreated", 1),
        ("OpportunityCreated", 1),
    ]
    path = body["path"]
    assert path["converted"] is True
    assert [e["type"] for e in path["events"]] == [
        "FormSubmitted",
        "LeadCreated",
        "WebsiteVisited",
        "MarketingQualified",
        "OpportunityCreated",
    ]
    everyone = ok(host, "paths", steps="FormSubmitted,LeadCreated,OpportunityCreated", **JAN_APR)
    # A and B submitted a form; B's lead came before its form, so only A goes on: fallout 1 of 2 at the form
    assert [(n["reached"], n["percent"], n["fallout"]) for n in everyone["nodes"]] == [
        (2, 100.0, 1),
        (1, 50.0, 0),
        (1, 50.0, None),
    ]
    previous = ok(host, "paths", steps="FormSubmitted,LeadCreated,OpportunityCreated", percent="previous", **JAN_APR)
    assert [n["percent"] for n in previous["nodes"]] == [100.0, 50.0, 100.0]


@pytest.mark.parametrize(
    ("route", "params", "names"),
    [
        ("cohorts", {"include": "OpportunityCreated"}, "return"),
        ("cohorts", {"include": "OpportunityCreatd", "return": "OpportunityWon"}, "unknown event type"),
        ("cohorts", {"include": "OpportunityCreated>=x", "return": "OpportunityWon"}, "METRIC>=N"),
        ("cohorts", {"include": "A,B,C,D", "return": "OpportunityWon"}, "include"),
        ("cohorts", {"include": "FormSubmitted", "return": "FormSubmitted", "granularity": "hour"}, "granularity"),
        (
            "cohorts",
            {"include": "FormSubmitted", "return": "FormSubmitted", "granularity": "day", "from": "2020-01-01"},
            "coarser",
        ),
        ("flows", {}, "starts_with"),
        ("flows", {"starts_with": "FormSubmitted", "ends_with": "LeadCreated"}, "exactly one"),
        ("flows", {"ends_with": "LeadCreated", "columns": "9"}, "columns"),
        ("flows", {"ends_with": "LeadCreated", "columns": "\u00b2"}, "columns: '\u00b2' is not a whole number"),
        ("flows", {"ends_with": "LeadCreated", "occurrence": "middle"}, "occurrence: 'middle' is not one of"),
        ("cohorts", {"include": "OpportunityCreated>=0", "return": "OpportunityWon"}, "include:"),
        (
            "cohorts",
            {"include": "OpportunityCreated", "return": "FormSubmitted,LeadCreated", "container": "opportunity"},
            "container: FormSubmitted, LeadCreated cannot be counted per opportunity",
        ),
        (f"accounts/{t.A}", {"to": "9999-12-31"}, "to: '9999-12-31' is outside"),
        (f"accounts/{t.A}", {"to": "0001-01-05"}, "to: '0001-01-05' is outside"),
        ("paths", {"steps": "FormSubmitted"}, "steps"),
        ("paths", {"steps": "FormSubmitted,LeadCreated", "percent": "total"}, "percent"),
        (f"accounts/{t.A}", {"from": "yesterday"}, "from"),
        (f"accounts/{t.A}", {"from": "2026-03-01", "to": "2026-02-01"}, "before it ends"),
        (f"accounts/{t.A}", {"colour": "blue"}, "unknown parameter 'colour'"),
    ],
)
def test_bad_parameters_get_400_naming_the_problem(served: Any, route: str, params: dict[str, str], names: str) -> None:
    host, _ = served
    response = get(host, route, **params)
    assert response.status_code == 400
    assert names in response.json()["error"]


def test_unknown_accounts_and_journeys_get_404_and_a_missing_key_401(served: Any) -> None:
    host, _ = served
    assert get(host, "accounts/00000000-0000-0000-0000-000000000001").status_code == 404
    assert get(host, "journeys/no-such-journey").status_code == 404
    assert get(host, "journeys/abm-nurture", account="00000000-0000-0000-0000-000000000001").status_code == 404
    assert (
        get(
            host, "paths", steps="FormSubmitted,LeadCreated", account="00000000-0000-0000-0000-000000000001"
        ).status_code
        == 404
    )
    assert get(host, "cohorts", key=None, include="FormSubmitted", **{"return": "FormSubmitted"}).status_code == 401
    assert get(host, f"accounts/{t.A}", key="wrong").status_code == 401


def test_insights_read_the_mirror_and_send_nothing_to_dataverse(served: Any) -> None:
    host, runtime = served
    before = runtime.client.stats.as_dict()["total"]
    ok(host, f"accounts/{t.A}", **JAN_APR)
    ok(host, "flows", ends_with="MarketingQualified")
    ok(host, "paths", steps="FormSubmitted,LeadCreated")
    assert runtime.client.stats.as_dict()["total"] == before
