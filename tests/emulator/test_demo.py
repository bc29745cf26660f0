"""`abm demo` and `abm emulator`: the main job on the embedded default, and the emulator as a command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from selenium.webdriver.chrome.webdriver import WebDriver

from abm_command.main import main
from devtools.emulator.schema import TABLES
from devtools.emulator.store import Store
from devtools.tenant import size_from
from tests.browser import rendered

NOW = "2026-11-23T00:00:00Z"


@pytest.fixture(autouse=True)
def in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo writes its report to the working directory by default: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


def demo(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    status = main(["demo", "--json", "--now", NOW, *args])
    assert status == 0, capsys.readouterr().err[-500:]
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_demo_json_reports_now_tenant_and_requests(capsys: pytest.CaptureFixture[str]) -> None:
    report = demo(capsys, "--size", "small")
    size = size_from("small")
    assert report["now"] == NOW
    assert set(report) == {"now", "tenant", "requests", "writes", "segments", "journeys", "scoring", "sync", "report"}
    assert report["report"] == "abm-report.html" and Path("abm-report.html").stat().st_size > 0
    assert report["sync"]["mode"] == "full"  # type: ignore[index]
    journeys = report["journeys"]
    assert isinstance(journeys, dict)
    assert {j["target"] for j in journeys.values()} == {"account", "contact"}
    assert report["segments"]["amsterdam-purchasers"]["members"] > 0  # type: ignore[index]
    tenant = report["tenant"]
    assert isinstance(tenant, dict)
    assert tenant["accounts"] == size.accounts
    assert tenant["leads"] == size.leads
    assert tenant["opportunities"] == size.opportunities
    assert tenant["interactions"] == size.interactions
    assert tenant["contacts"] > 0
    requests_ = report["requests"]
    assert isinstance(requests_, dict)
    assert sum(requests_["by_method"].values()) == requests_["total"]
    assert {"accounts", "contacts", "leads", "opportunities", "abm_interactions", "abm_leadscores"} <= set(
        requests_["by_table"]
    )


def test_faults_change_the_request_count_but_not_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    clean = demo(capsys, "--size", "8")
    faulty = demo(capsys, "--size", "8", "--faults", "503=0.2,reset=0.1,lost=0.1,seed=3")
    assert faulty["tenant"] == clean["tenant"] and faulty["now"] == clean["now"]
    assert faulty["requests"]["total"] > clean["requests"]["total"]  # type: ignore[index]


def test_a_second_run_on_the_same_database_sees_the_first_runs_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "tenant.sqlite")
    demo(capsys, "--size", "5", "--db", db)
    store = Store(db)
    store.insert(
        TABLES["lead"],
        {"leadid": "e0e0e0e0-0000-4000-8000-000000000001", "subject": "written between runs", "createdon": NOW},
    )
    leads_now = store.count(TABLES["lead"])  # the tenant's, the first run's, and this one
    store.close()
    second = demo(capsys, "--size", "5", "--db", db)
    assert second["tenant"]["leads"] == leads_now  # type: ignore[index]


@pytest.mark.parametrize(("option", "value"), [("--size", "huge"), ("--faults", "503=2")])
def test_bad_demo_options_are_refused_as_usage_errors(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", option, value])
    assert exited.value.code == 2
    assert value in capsys.readouterr().err


def test_the_emulator_command_prints_its_url_serves_and_stops_on_sigterm() -> None:
    abm = Path(sys.executable).parent / "abm"
    with subprocess.Popen(
        [str(abm), "emulator", "--size", "none", "--now", NOW],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            url = line.split()[-1]
            assert url.startswith("http://127.0.0.1:") and url.endswith("/api/data/v9.2/")
            who = requests.get(url + "WhoAmI", timeout=10).json()
            users = requests.get(url + "systemusers?$select=fullname", timeout=10).json()["value"]
            assert who["UserId"] in {u["systemuserid"] for u in users}
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0


def test_a_second_run_on_the_same_database_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "twice.sqlite")
    first = demo(capsys, "--size", "6", "--db", db)
    second = demo(capsys, "--size", "6", "--db", db)
    writes = first["writes"]
    assert isinstance(writes, dict) and writes["abm_leadscores"]["upserted"] > 0
    assert second["writes"] == {"abm_leadscores": {"upserted": 0}, "leads": {"updated": 0}}
    assert second["scoring"] == first["scoring"]
    assert second["journeys"] == first["journeys"]  # totals since the start: the second run added nothing


def test_demo_scores_every_lead_with_every_model_and_reports_it(capsys: pytest.CaptureFixture[str]) -> None:
    report = demo(capsys, "--size", "small")
    models = report["scoring"]["models"]  # type: ignore[index]
    assert {summary["target"] for summary in models.values()} == {"contact", "account"}
    created = report["writes"].get("leads", {}).get("created", 0)  # type: ignore[attr-defined]
    leads = report["tenant"]["leads"] + created  # type: ignore[index]  # journeys' new leads are scored in the same run
    for summary in models.values():
        accounted = (
            summary["scored"]
            + summary["not_targeted"]
            + sum(summary["unscorable"].values())
            + summary["below_consent"]
            + summary["not_open"]
        )
        assert accounted == leads
        assert sum(summary["grades"].values()) == summary["scored"]
    upserted = report["writes"]["abm_leadscores"]["upserted"]  # type: ignore[index]
    assert upserted == sum(summary["scored"] for summary in models.values())


def test_score_shows_one_leads_explanations_from_a_demo_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "scored.sqlite")
    demo(capsys, "--size", "6", "--db", db)
    store = Store(db)
    lead_id = store.scalar("SELECT abm_leadid FROM abm_leadscore ORDER BY abm_score DESC LIMIT 1")
    store.close()
    assert main(["score", "--lead", lead_id, "--db", db, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lead"] == lead_id and shown["scores"]
    for row in shown["scores"]:
        assert row["abm_score"] == sum(item["points"] for item in row["abm_explanation"])
    assert main(["score", "--lead", lead_id, "--db", db]) == 0
    assert "points, grade" in capsys.readouterr().out


def test_the_demo_report_opens_offline_in_chromium_with_every_chart_drawn(
    capsys: pytest.CaptureFixture[str], chromium: WebDriver
) -> None:
    report = demo(capsys, "--size", "small", "--report", "out/insights.html")
    assert report["report"] == "out/insights.html"
    page = rendered(chromium, Path("out/insights.html").resolve())
    assert page["resources"] == 0 and page["severe"] == [] and page["notes"] == []
    marks = page["marks"]
    assert set(marks) == {"kpis", "cohort", "flow", "scores", "journeys"}
    assert marks["kpis"]["bar"] >= 10  # ten accounts, each with some engagement
    assert marks["cohort"]["cell"] >= 11 * 12 // 2  # twelve monthly cohorts: 11 + 10 + ... + 0 cells
    assert marks["flow"]["node"] >= 2 and marks["flow"]["link"] >= 1
    assert marks["scores"]["bar"] >= len(report["scoring"]["models"])  # type: ignore[arg-type]
    assert marks["journeys"]["bar"] >= len(report["journeys"])  # type: ignore[arg-type]
    assert page["hidden"] == {}


def test_without_json_the_report_path_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--size", "8", "--now", NOW]) == 0
    out, err = capsys.readouterr()
    assert "report: abm-report.html" in err.splitlines() and "abm-report.html" not in out
    assert Path("abm-report.html").read_text().startswith("<!DOCTYPE html>")
