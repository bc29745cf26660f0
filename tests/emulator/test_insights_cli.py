"""`abm insights ...`: the same analyses as the HTTP functions, as tables for people and JSON for scripts, on the
hand-computed tenant of `tests/insights_tenant.py` (a settings file naming its state store, or a demo database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abm_command.main import main
from statestore.sqlite import SqliteStateStore
from tests import insights_tenant as t
from tests.runtime_support import demo_setup

JAN_APR = ["--from", "2026-01-01", "--to", "2026-04-30"]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A path whose `.state` file holds the tenant, as `abm demo --db PATH` leaves it."""
    db = str(tmp_path_factory.mktemp("cli") / "demo.sqlite")
    store = SqliteStateStore(f"{db}.state")
    try:
        t.mirror_into(store, demo_setup())
    finally:
        store.close()
    return db


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["insights", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_account_as_json_and_as_a_table(demo_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "account", t.A, "--db", demo_db, "--json", *JAN_APR)
    assert code == 0
    body = json.loads(out)
    assert body["kpis"]["emails_sent"] == 2 and body["best_scores"]["account-fit"]["score"] == 75
    code, out, _ = run(capsys, "account", t.A, "--db", demo_db, *JAN_APR)
    lines = out.splitlines()
    assert lines[0] == f"Contoso <Ltd> & Co ({t.A}), 2 contacts, 2026-01-01 .. 2026-05-01"
    assert any(line.split() == ["emails", "sent", "2"] for line in lines)
    assert any(line.split() == ["other", "interactions", "0"] for line in lines)
    assert lines[-4] == "best current score of its open leads, per model:"
    assert [line.split() for line in lines[-3:]] == [
        ["model", "score", "grade", "lead"],
        ["account-fit", "75", "A", t.LEAD_A],
        ["contact-engagement", "40", "C", t.LEAD_A],
    ]
    code, out, _ = run(capsys, "account", t.B, "--db", demo_db, *JAN_APR)
    assert out.splitlines()[-1] == "best scores: none (no open lead scored)"


def test_cohorts_table_has_a_row_per_month_and_the_average(demo_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--include", "OpportunityCreated>=1", "--return", "OpportunityWon", "--container", "opportunity"]
    code, out, _ = run(capsys, "cohorts", "--db", demo_db, *args, *JAN_APR)
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[1] == ["month", "included", "+1", "+2", "+3"]
    assert rows[3] == ["2026-02", "1", "0.0%", "100.0%"]
    assert rows[-1][0] == "average"
    code, out, _ = run(capsys, "cohorts", "--db", demo_db, *args, "--rolling", "--json", *JAN_APR)
    feb = {c["label"]: c for c in json.loads(out)["cohorts"]}["2026-02"]
    assert [c["percent"] for c in feb["cells"]] == [0.0, None]


def test_flows_paths_and_journeys(demo_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "flows", "--db", demo_db, "--ends-with", "MarketingQualified", "--columns", "2", *JAN_APR
    )
    assert code == 0
    assert out.splitlines() == [
        "1 accounts whose path ends with MarketingQualified, 2026-01-01 .. 2026-05-01",
        "column 1: WebsiteVisited 1",
        "column 2: MarketingQualified 1",
    ]
    webinar = ["--starts-with", "webinar", "--dimension", "content_type", *JAN_APR]
    code, out, _ = run(capsys, "flows", "--db", demo_db, *webinar, "--occurrence", "last")
    # A's content types: newsletter, webinar, whitepaper, pricing page, webinar: nothing after the last webinar
    assert code == 0
    assert out.splitlines() == [
        "1 accounts whose path starts with webinar (its last occurrence), 2026-01-01 .. 2026-05-01",
        "column 1: webinar 1",
    ]
    code, out, _ = run(capsys, "flows", "--db", demo_db, *webinar, "--json")
    assert [n["label"] for n in json.loads(out)["nodes"]] == ["webinar", "whitepaper", "pricing page", "webinar"]
    code, out, _ = run(capsys, "paths", "--db", demo_db, "--steps", "FormSubmitted,LeadCreated", "--account", t.A)
    assert code == 0 and f"account {t.A}: converted" in out
    code, out, _ = run(capsys, "journey", "abm-nurture", "--db", demo_db, "--account", t.B)
    lines = out.splitlines()
    assert lines[0] == f"journey abm-nurture (account-based), account {t.B}"
    assert lines[1].split() == ["tile", "kind", "entered", "false"]
    assert lines[2].split() == ["opened", "trigger", "1", "1"]


def test_mistakes_exit_with_the_reason(demo_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "paths", "--db", demo_db, "--steps", "FormSubmitted,Nope")
    assert code == 2 and "steps: unknown event type 'Nope'" in err
    code, _, err = run(capsys, "account", "00000000-0000-0000-0000-000000000009", "--db", demo_db)
    assert code == 1 and "not in the mirror" in err
    code, _, err = run(capsys, "account", t.A, "--db", demo_db, "--to", "9999-12-31")
    assert code == 2 and "to: '9999-12-31' is outside" in err  # not a traceback
    code, _, err = run(
        capsys, "cohorts", "--db", demo_db, "--include", "OpportunityCreated>=0", "--return", "FormSubmitted"
    )
    assert code == 2 and "include: 'OpportunityCreated>=0'" in err
    code, _, err = run(capsys, "account", t.A, "--db", demo_db + ".missing")
    assert code == 2 and "no state store" in err


def test_a_settings_file_names_the_state_store_and_report_writes_html(
    demo_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "local.settings.json"
    values = {"DATAVERSE_URL": "http://127.0.0.1:9", "ABM_STATE_STORE": "sqlite", "ABM_SQLITE_PATH": f"{demo_db}.state"}
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    code = main(["--settings", str(settings), "insights", "account", t.C, "--json", *JAN_APR])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)["kpis"]["opportunities_lost"] == 1
    report = tmp_path / "out" / "report.html"
    report.parent.mkdir()
    code = main(
        ["--settings", str(settings), "insights", "report", "--out", str(report), "--to", "2026-04-30", "--json"]
    )
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out) == {"report": str(report)}
    assert "Contoso &lt;Ltd&gt; &amp; Co" in report.read_text()
