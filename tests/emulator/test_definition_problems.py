"""A broken definition never runs silently or half-way: one function lists every problem of a definitions folder
(file, JSON path, reason), a run checks the columns the definitions name against the org's metadata before it sends
anything naming them (once per definitions fingerprint), and `/api/health` fails when every run would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from abm import bootstrap
from abm.definitions import APP_ROOT, DefinitionErrors, read_definitions
from abm.jobs.columns import CHECKED
from abm.jobs.sync import sync
from abm.settings import Settings
from function_app import health
from statestore.sqlite import SqliteStateStore
from tests.runtime_support import NOW, fresh_client, tenant


def definitions(tmp_path: Path) -> Path:
    """A copy of the shipped definitions to break."""
    folder = tmp_path / "definitions"
    shutil.copytree(APP_ROOT / "definitions", folder)
    return folder


def edit(file: Path, change: Any) -> None:
    document = json.loads(file.read_text(encoding="utf-8"))
    change(document)
    file.write_text(json.dumps(document), encoding="utf-8")


def problems_of(folder: Path) -> set[tuple[str, str]]:
    _, problems = read_definitions(folder)
    assert all(p.reason for p in problems)
    return {(p.file.name, p.path) for p in problems}


def test_every_problem_of_a_folder_at_once(tmp_path: Path) -> None:
    folder = definitions(tmp_path)
    assert problems_of(folder) == set()
    edit(folder / "journeys/abm-nurture.json", lambda d: d.update(segment="amsterdam-purchaser"))  # a typo
    edit(folder / "segments/big-or-engaged.json", lambda d: d.update(combine="either", colour="red"))
    (folder / "scoring/copy.json").write_text((folder / "scoring/account-fit.json").read_text())  # a second name
    (folder / "segments/broken.json").write_text('{"name": "x",')
    assert problems_of(folder) == {
        ("abm-nurture.json", "$.segment"),
        ("big-or-engaged.json", "$"),  # an unknown property
        ("big-or-engaged.json", "$.combine"),
        ("copy.json", "$.name"),
        ("broken.json", "$"),
    }
    with pytest.raises(DefinitionErrors) as caught:
        bootstrap.build_setup(Settings.from_env({"ABM_DEFINITIONS_DIR": str(folder)}))
    message = str(caught.value)
    assert message.startswith("5 problems: ") and "abm-nurture.json: $.segment: no segment is named" in message


def test_a_journey_of_an_undefined_segment_never_runs(tmp_path: Path) -> None:
    folder = definitions(tmp_path)
    edit(folder / "journeys/abm-nurture.json", lambda d: d.update(segment="nobody"))
    [problem] = read_definitions(folder)[1]
    assert problem.reason == ("no segment is named 'nobody' (amsterdam-purchasers, big-or-engaged, key-accounts)")


def test_a_predictive_model_that_is_not_defined_is_a_settings_problem() -> None:
    with pytest.raises(Exception, match="ABM_PREDICTIVE_SCORE_MODEL names no defined scoring model"):
        bootstrap.build_setup(Settings.from_env({"ABM_PREDICTIVE_SCORE_MODEL": "acount-fit"}))


def misspelt(folder: Path) -> None:
    """A segment column and a scoring path's column the org does not have."""
    edit(
        folder / "segments/amsterdam-purchasers.json",
        lambda d: d["contact"]["all"][0].update(column="jobtitel"),
    )
    edit(
        folder / "scoring/account-fit.json",
        lambda d: d["rules"][0]["when"][0][0].update(attribute="lead.parentaccountid.address_city"),
    )


def test_a_column_the_org_lacks_stops_the_run_before_it_reads_naming_file_and_path(tmp_path: Path) -> None:
    folder = definitions(tmp_path)
    misspelt(folder)
    setup = bootstrap.build_setup(Settings.from_env({"ABM_DEFINITIONS_DIR": str(folder)}))  # the files are valid
    with tenant() as (emulator, _):
        store, client = SqliteStateStore(), fresh_client(emulator)
        with pytest.raises(DefinitionErrors) as caught:
            sync(client, store, setup, now=NOW)
        found = {(p.file.name, p.path, p.reason) for p in caught.value.problems}
        assert found == {
            (
                "amsterdam-purchasers.json",
                "$.contact.all[0].column",
                "contact has no column 'jobtitel' in the org (did you mean jobtitle?)",
            ),
            (
                "account-fit.json",
                "$.rules[0].when[0][0].attribute",
                "account has no column 'address_city' in the org (did you mean address1_city, address1_country?)",
            ),
        }
        # Nothing but the table definitions was asked: no read named the columns, nothing was written.
        assert set(client.stats.as_dict()["by_table"]) == {"EntityDefinitions"}
        assert client.stats.as_dict()["by_method"] == {"GET": client.stats.total}
        assert store.checkpoint(CHECKED) is None

        # Fixed, the next run checks the new definitions once; the one after sends no metadata request.
        good = bootstrap.build_setup(Settings.from_env({}))
        first = sync(fresh_client(emulator), store, good, now=NOW)
        assert first.requests["by_table"]["EntityDefinitions"] == 4  # contact, account, lead, abm_interaction
        again = sync(fresh_client(emulator), store, good, now=NOW)
        assert "EntityDefinitions" not in again.requests["by_table"]


def test_health_fails_while_the_definitions_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = definitions(tmp_path)
    misspelt(folder)
    with tenant() as (emulator, _):
        for name, value in {
            "DATAVERSE_URL": emulator.org_url,
            "DATAVERSE_AUTH": "none",
            "ABM_DEFINITIONS_DIR": str(folder),
        }.items():
            monkeypatch.setenv(name, value)
        bootstrap.reset()
        health.reset_cache()
        try:
            answer = health.health(func.HttpRequest("GET", "/api/health", body=b""))
        finally:
            bootstrap.reset()
            health.reset_cache()
    body = json.loads(answer.get_body())
    assert answer.status_code == 503
    problem = body["checks"]["definitions"]["problem"]
    assert "2 problems" in problem and "$.contact.all[0].column" in problem and "jobtitel" in problem
    assert all(check["ok"] for name, check in body["checks"].items() if name != "definitions")
