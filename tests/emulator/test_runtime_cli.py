"""`abm sync`, `abm deadletters` and `abm replay` from a shell, with settings from a local.settings.json file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from abm.cli import main
from tests.runtime_support import dataverse_state, outsider_contact, tenant


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_sync_then_incremental_then_deadletters_and_a_dry_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tenant() as (emulator, client):
        settings = tmp_path / "local.settings.json"
        values = {
            "DATAVERSE_URL": emulator.org_url,
            "DATAVERSE_AUTH": "none",
            "ABM_STATE_STORE": "sqlite",
            "ABM_SQLITE_PATH": str(tmp_path / "state.sqlite"),
        }
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        before = dataverse_state(client)
        dry = run(capsys, "--settings", str(settings), "sync", "--dry-run", "--json")
        assert dry["sync"]["mode"] == "full" and dry["dry_run_writes"]
        assert dataverse_state(client) == before  # a dry sync writes nothing, not even the state
        first = run(capsys, "--settings", str(settings), "sync", "--json")
        assert first["sync"]["mode"] == "full" and first["writes"]["tasks"]["created"] > 0
        second = run(capsys, "--settings", str(settings), "sync", "--json")
        assert second["sync"]["mode"] == "incremental"
        assert run(capsys, "--settings", str(settings), "deadletters", "--json") == {"dead_letters": []}
        contact = outsider_contact(client)
        replayed = run(
            capsys, "--settings", str(settings), "replay", "--record", "contact", contact, "--dry-run", "--json"
        )
        assert replayed["dry_run"] is True and replayed["records"][0]["id"] == contact


def test_replay_refuses_a_bad_record_id_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {"DATAVERSE_AUTH": "none", "ABM_SQLITE_PATH": str(tmp_path / "s")}}))
    assert main(["--settings", str(settings), "replay", "--record", "contact", "not-a-guid"]) == 2
    assert "GUID" in capsys.readouterr().err
