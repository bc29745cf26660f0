"""The insights report without a browser: escaping, determinism, chart geometry, empty sections, atomic writes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import abm.views.report as report_module
from abm.views.charts import band_path, esc, fmt_number, fmt_percent, heat_opacity, sankey
from abm.views.report import render_report, write_report

NAME = "Contoso <Ltd> & Co \"Nordic\" 'Ø'"


def _bins(counts: list[int]) -> list[dict[str, Any]]:
    return [{"from": i * 10, "to": i * 10 + 10, "count": c} for i, c in enumerate(counts)]


def _cell(offset: int, period: str, count: int, base: int, percent: float | None) -> dict[str, Any]:
    return {"offset": offset, "period": period, "count": count, "base": base, "percent": percent}


def _link(source: tuple[int, str], target: tuple[int, str], count: int) -> dict[str, Any]:
    return {
        "from": {"column": source[0], "label": source[1]},
        "to": {"column": target[0], "label": target[1]},
        "count": count,
    }


def sample() -> dict[str, Any]:
    """A report's data: 3 accounts (16 positive KPIs), 4 monthly cohorts (6 cells, 3 averages), a 3-column flow
    (5 nodes, 5 links), 2 models (10 + 4 positive bins) and 1 journey (4 positive tile counters)."""
    span = {"from": "2025-11-23T00:00:00Z", "to": "2026-11-23T00:00:00Z"}
    kpis = {
        "emails_sent": 10,
        "emails_delivered": 9,
        "emails_opened": 5,
        "emails_clicked": 2,
        "website_visits": 7,
        "form_submissions": 1,
        "event_registrations": 0,
        "other_interactions": 3,
        "journeys_entered": 1,
        "leads": 2,
        "opportunities_open": 1,
        "opportunities_won": 0,
    }
    busy = dict.fromkeys(kpis, 1234)
    best = {
        "engagement": {"score": 12, "grade": None, "lead": "l2"},
        "account-fit": {"score": 80, "grade": "A", "lead": "l1"},
    }
    return {
        "title": "ABM insights",
        "now": "2026-11-23T00:00:00Z",
        "range": span,
        "accounts": [
            {"account": {"id": "a1", "name": NAME}, "range": span, "contacts": 20, "kpis": kpis, "best_scores": best},
            {
                "account": {"id": "a2", "name": "Fabrikam"},
                "range": span,
                "contacts": 3,
                "kpis": busy,
                "best_scores": {},
            },
            {"account": {"id": "a3", "name": None}, "range": span, "contacts": 0, "kpis": {}},
        ],
        "cohort": {
            "container": "opportunity",
            "granularity": "month",
            "type": "retention",
            "rolling": False,
            "range": {"from": "2026-01-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
            "inclusion": {"match": "all", "metrics": [{"metric": "OpportunityCreated", "at_least": 1}]},
            "return": {"match": "all", "metrics": [{"metric": "OpportunityWon", "at_least": 1}]},
            "cohorts": [
                {
                    "period": "2026-01-01",
                    "label": "2026-01",
                    "included": 3,
                    "cells": [
                        _cell(1, "2026-02-01", 1, 3, 33.3),
                        _cell(2, "2026-03-01", 3, 3, 100.0),
                        _cell(3, "2026-04-01", 0, 3, 0.0),
                    ],
                },
                {
                    "period": "2026-02-01",
                    "label": "2026-02",
                    "included": 0,
                    "cells": [_cell(1, "2026-03-01", 0, 0, None), _cell(2, "2026-04-01", 0, 0, None)],
                },
                {
                    "period": "2026-03-01",
                    "label": "2026-03",
                    "included": 4,
                    "cells": [_cell(1, "2026-04-01", 2, 4, 50.0)],
                },
                {"period": "2026-04-01", "label": "2026-04", "included": 1, "cells": []},
            ],
            "average": [{"offset": 1, "percent": 41.7}, {"offset": 2, "percent": 100.0}, {"offset": 3, "percent": 0.0}],
        },
        "flow": {
            "container": "account",
            "dimension": "content_type",
            "anchor": {"ends_with": "MarketingQualified"},
            "repeats": False,
            "columns": 3,
            "limit": 10,
            "range": None,
            "paths": 6,
            "nodes": [
                {"column": 0, "label": "whitepaper", "count": 3},
                {"column": 0, "label": "webinar", "count": 1},
                {"column": 1, "label": "webinar", "count": 3},
                {"column": 1, "label": "case study", "count": 2},
                {"column": 2, "label": "MarketingQualified", "count": 6},
            ],
            "links": [
                _link((0, "whitepaper"), (1, "webinar"), 2),
                _link((0, "whitepaper"), (1, "case study"), 1),
                _link((0, "webinar"), (1, "case study"), 1),
                _link((1, "webinar"), (2, "MarketingQualified"), 3),
                _link((1, "case study"), (2, "MarketingQualified"), 2),
            ],
            "entries": [4, 1, 1],
        },
        "scores": {
            "models": {
                "account-fit": {
                    "target": "account",
                    "scored": 120,
                    "bins": _bins([5, 10, 20, 30, 25, 15, 8, 4, 2, 1]),
                    "grades": {"B": 10, "A": 3},
                },
                "lead-engagement": {"target": "lead", "scored": 9, "bins": _bins([2, 0, 3, 3, 1]), "grades": {"C": 9}},
            }
        },
        "journeys": [
            {
                "journey": "abm-nurture",
                "target": "account",
                "account": None,
                "tiles": [
                    {"id": "trigger-1", "kind": "trigger", "counts": {"entered": 42, "true": 30, "false": 12}},
                    {"id": "email-1", "kind": "email", "counts": {"entered": 30}},
                    {"id": "wait-1", "kind": "wait", "counts": {"entered": 0}},
                ],
            }
        ],
    }


def marks(page: str, cls: str) -> int:
    """How many elements carry exactly this class token."""
    return sum(cls in found.split() for found in re.findall(r'class="([^"]*)"', page))


def section(page: str, sid: str) -> str:
    match = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert match, f"no section {sid}"
    return match.group(1)


def test_a_crm_name_is_escaped_everywhere_and_never_appears_as_markup() -> None:
    data = sample()
    data["accounts"][0]["account"]["name"] = "<script>alert('x')</script> & Co"
    data["journeys"][0]["journey"] = '<img src=x onerror="alert(1)">'
    data["flow"]["nodes"][0]["label"] = "<b>bold</b>"
    data["flow"]["links"][0]["from"]["label"] = "<b>bold</b>"
    data["flow"]["links"][1]["from"]["label"] = "<b>bold</b>"
    page = render_report(data)
    assert "<script" not in page
    assert "<img" not in page
    assert "<b>bold" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


def test_non_ascii_and_quotes_survive_escaped() -> None:
    page = render_report(sample())
    assert "Contoso &lt;Ltd&gt; &amp; Co &quot;Nordic&quot; &#x27;Ø&#x27;" in page
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page


def test_the_same_data_renders_the_same_bytes() -> None:
    assert render_report(sample()) == render_report(sample())


def test_the_page_loads_nothing_and_runs_no_script() -> None:
    page = render_report(sample())
    assert "<script" not in page
    assert not re.search(r"\b(?:src|href)=\"(?!#)", page)  # only in-page links (the section navigation)
    assert "url(" not in page and "@import" not in page
    assert "default-src &#x27;none&#x27;" in page  # the Content-Security-Policy forbids loading anything


def test_each_chart_has_one_mark_per_positive_value() -> None:
    page = render_report(sample())
    # a1: opened, clicked, visits, forms, other interactions, leads, open (events and won are 0); a2: all nine
    assert marks(section(page, "kpis"), "bar") == 7 + 9 + 0
    assert marks(section(page, "cohort"), "cell") == 6
    assert marks(section(page, "cohort"), "avg-cell") == 3
    assert marks(section(page, "flow"), "node") == 5
    assert marks(section(page, "flow"), "link") == 5
    assert marks(section(page, "scores"), "bar") == 10 + 4
    assert marks(section(page, "journeys"), "bar") == 4
    assert 'class="nodata"' not in page


def test_header_shows_title_now_and_range() -> None:
    page = render_report(sample())
    assert "<h1>ABM insights</h1>" in page
    assert '<time datetime="2026-11-23T00:00:00Z">2026-11-23 00:00 UTC</time>' in page
    assert "2025-11-23 00:00 UTC</time> \u2013 <time" in page


def test_numbers_have_thousands_separators() -> None:
    page = render_report(sample())
    assert ">1,234<" in section(page, "kpis")
    assert fmt_number(1234567) == "1,234,567"
    assert fmt_number(2.25) == "2.2"
    assert fmt_percent(33.333) == "33.3%"
    assert fmt_percent(100.0) == "100%"
    assert fmt_percent(None) == "\u2013"


def test_flow_link_bands_are_as_wide_as_their_counts_on_one_scale() -> None:
    svg = sankey(sample()["flow"])
    links = re.findall(r'<path class="link" d="([^"]+)"', svg)
    assert len(links) == 5
    widths = []
    for path in links:
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path)]
        y0, y0_bottom = numbers[1], numbers[-1]  # M x0,y0 ... back to x0,y0+width Z
        widths.append(y0_bottom - y0)
    per_path = [w / c for w, c in zip(widths, [2, 1, 1, 3, 2], strict=True)]
    assert max(per_path) - min(per_path) < 0.05
    heights = [float(h) for h in re.findall(r'<rect class="node" [^>]*height="([\d.]+)"', svg)]
    assert heights[0] / 3 == pytest.approx(per_path[0], abs=0.05)  # nodes use the same scale


def test_band_path_is_a_closed_pair_of_cubic_beziers() -> None:
    assert band_path(0, 10, 100, 50, 4) == "M0,10C50,10 50,50 100,50L100,54C50,54 50,14 0,14Z"


def test_heat_map_colour_grows_with_percent_and_follows_the_type() -> None:
    assert heat_opacity(0) < heat_opacity(33.3) < heat_opacity(100) == 1
    retention = section(render_report(sample()), "cohort")
    churn_data = sample()
    churn_data["cohort"]["type"] = "churn"
    churn = section(render_report(churn_data), "cohort")
    assert 'fill="#15803d"' in retention and 'fill="#b91c1c"' not in retention
    assert 'fill="#b91c1c"' in churn and 'fill="#15803d"' not in churn
    assert 'class="row row-empty"' in retention  # the cohort with 0 included is greyed out


@pytest.mark.parametrize(
    ("key", "empty", "sid"),
    [
        ("accounts", [], "kpis"),
        ("cohort", {"cohorts": []}, "cohort"),
        ("flow", {"paths": 0, "nodes": [], "links": [], "entries": [0, 0, 0]}, "flow"),
        ("scores", {"models": {}}, "scores"),
        ("journeys", [], "journeys"),
    ],
)
def test_an_empty_section_shows_a_note_and_the_others_still_render(key: str, empty: object, sid: str) -> None:
    data = sample()
    data[key] = empty
    page = render_report(data)
    assert 'class="nodata"' in section(page, sid) and "<svg" not in section(page, sid)
    assert page.count('class="nodata"') == 1


def test_no_data_at_all_renders_every_section_with_its_note() -> None:
    page = render_report({})
    assert re.findall(r'<section id="(\w+)">', page) == ["kpis", "cohort", "flow", "scores", "journeys"]
    assert page.count('class="nodata"') == 5
    assert "<svg" not in page


def test_more_accounts_than_the_limit_are_cut_and_counted() -> None:
    data = sample()
    data["accounts"] = data["accounts"] * 5
    page = render_report(data)
    assert page.count('<figure class="account">') == report_module.ACCOUNT_LIMIT
    assert "Showing 10 of 15 accounts." in page


def test_a_missing_name_falls_back_to_the_id_and_the_best_score_per_model_shows_its_grade() -> None:
    page = section(render_report(sample()), "kpis")
    assert '<h3 class="account-name">a3</h3>' in page
    badges = re.findall(r'<span class="badge best-score"[^>]*>([^<]*)</span>', page)
    assert badges == ["account-fit 80 (A)", "engagement 12"]  # by model name; no grade, none shown


def test_every_kpi_the_bars_show_is_labelled_other_interactions_included() -> None:
    page = section(render_report(sample()), "kpis")
    assert "Other interactions" in page
    assert f"<title>{esc(NAME + ': Other interactions 3')}</title>" in page  # a1's bar, with its tooltip


def test_write_report_replaces_the_file_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    assert write_report(str(target), {"title": "first"}) == target
    assert "<title>first</title>" in target.read_text(encoding="utf-8")
    write_report(target, sample())
    assert target.read_text(encoding="utf-8") == render_report(sample())
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


def test_a_failed_write_keeps_the_previous_report_and_removes_its_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.html"
    write_report(target, {"title": "kept"})

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report_module.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report(target, sample())
    assert "<title>kept</title>" in target.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
