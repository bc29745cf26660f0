"""The insights report opened in headless Chromium: every chart draws its marks with a size, nothing is loaded from
the network, the console has no error, names show as text, and a stronger heat-map colour means a higher percent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from abm.views.report import write_report
from tests.browser import rendered
from tests.test_report import NAME, sample

# What the sample draws (see tests.test_report.sample): one mark per positive value, per cell, per node, per link.
EXPECTED = {
    "kpis": {"bar": 7 + 9},
    "cohort": {"cell": 6, "avg-cell": 3},
    "flow": {"node": 5, "link": 5},
    "scores": {"bar": 10 + 4},
    "journeys": {"bar": 4},
}


def _open(driver: WebDriver, tmp_path: Path, data: dict[str, Any]) -> dict[str, Any]:
    return rendered(driver, write_report(tmp_path / "report.html", data))


def test_every_chart_renders_its_marks_offline_and_without_errors(chromium: WebDriver, tmp_path: Path) -> None:
    page = _open(chromium, tmp_path, sample())
    assert page["title"] == "ABM insights"
    assert page["marks"] == EXPECTED
    assert page["hidden"] == {}
    assert page["notes"] == []
    assert page["resources"] == 0
    assert page["severe"] == []


def test_a_crm_name_shows_as_text_not_markup(chromium: WebDriver, tmp_path: Path) -> None:
    _open(chromium, tmp_path, sample())
    names = [e.text for e in chromium.find_elements(By.CSS_SELECTOR, "#kpis .account-name")]
    assert names == [NAME, "Fabrikam", "a3"]
    assert chromium.find_elements(By.CSS_SELECTOR, "ltd") == []


def test_a_higher_percent_is_a_stronger_colour(chromium: WebDriver, tmp_path: Path) -> None:
    _open(chromium, tmp_path, sample())
    cells = chromium.execute_script(
        """return Array.from(document.querySelectorAll('#cohort .cell')).map(c => {
             const style = getComputedStyle(c);
             return {tip: c.querySelector('title').textContent, fill: style.fill, opacity: Number(style.fillOpacity)};
           });"""
    )
    by_percent = {cell["tip"].split(": ")[1].split(" ")[0]: cell for cell in cells}
    low, mid, high = by_percent["33.3%"], by_percent["50%"], by_percent["100%"]
    assert low["fill"] == mid["fill"] == high["fill"] == "rgb(21, 128, 61)"  # retention green
    assert low["opacity"] < mid["opacity"] < high["opacity"] == 1


def test_a_report_with_empty_sections_opens_and_shows_its_notes(chromium: WebDriver, tmp_path: Path) -> None:
    data = sample()
    data.update(accounts=[], cohort={"cohorts": [], "average": []}, flow={"paths": 0, "nodes": [], "links": []})
    data.update(scores={"models": {}}, journeys=[])
    page = _open(chromium, tmp_path, data)
    assert page["marks"] == {}
    assert page["notes"] == ["kpis", "cohort", "flow", "scores", "journeys"]
    assert page["resources"] == 0
    assert page["severe"] == []
    notes = [e.text for e in chromium.find_elements(By.CSS_SELECTOR, "section .nodata")]
    assert notes == [
        "No accounts in this report.",
        "No cohorts in this range.",
        "No paths reach the anchor in this range.",
        "No scoring models in this report.",
        "No journeys in this report.",
    ]
