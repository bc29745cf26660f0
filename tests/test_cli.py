"""The `abm` command: installed as a console script, thin over the service, clear about bad settings."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from abm.errors import InvalidInput, NotFound, Refused
from abm.jobs.pipeline import RunReport
from abm.settings import SettingsError
from abm_command import main as cli_main
from abm_command.errors import PARTIAL_FAILURE, run_command
from abm_command.main import main
from dataverse.errors import DataverseServerError
from tests.loopback import USER_ID, loopback_dataverse, url_of


def test_the_console_script_is_installed_and_shows_its_commands() -> None:
    abm = Path(sys.executable).parent / "abm"
    result = subprocess.run([str(abm), "--help"], capture_output=True, text=True, check=True)
    assert "whoami" in result.stdout and "settings" in result.stdout


def test_whoami_reports_the_application_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with loopback_dataverse() as server:
        monkeypatch.setenv("DATAVERSE_URL", url_of(server))
        monkeypatch.setenv("DATAVERSE_AUTH", "none")
        assert main(["whoami", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["status"] == "ok" and body["dataverse"]["user_id"] == USER_ID


def test_whoami_reads_a_local_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATAVERSE_URL", raising=False)
    with loopback_dataverse() as server:
        file = tmp_path / "local.settings.json"
        file.write_text(json.dumps({"Values": {"DATAVERSE_URL": url_of(server), "DATAVERSE_AUTH": "none"}}))
        assert main(["--settings", str(file), "whoami"]) == 0
    assert USER_ID in capsys.readouterr().out


def test_whoami_without_settings_fails_naming_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATAVERSE_URL", raising=False)
    monkeypatch.setenv("DATAVERSE_AUTH", "managed_identity")
    assert main(["whoami"]) == 1
    assert "DATAVERSE_URL" in capsys.readouterr().err


def test_a_bad_setting_exits_2_with_its_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATAVERSE_PAGE_SIZE", "lots")
    assert main(["settings"]) == 2
    assert "DATAVERSE_PAGE_SIZE must be an integer" in capsys.readouterr().err


def test_settings_lists_every_setting_and_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATAVERSE_CLIENT_SECRET", "hidden-value")
    monkeypatch.setenv("DATAVERSE_URL", "https://contoso.crm.dynamics.com")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "DATAVERSE_BULK_CHUNK_SIZE" in out and "https://contoso.crm.dynamics.com" in out
    assert "hidden-value" not in out and "(set)" in out


@pytest.mark.parametrize(
    ("error", "status", "printed"),
    [
        (InvalidInput("--since needs --until"), 2, "abm: --since needs --until"),
        (SettingsError("DATAVERSE_URL is required"), 2, "abm: DATAVERSE_URL is required"),
        (NotFound("account x is not in the mirror"), 1, "abm: account x is not in the mirror"),
        (Refused("not a webhook"), 1, "abm: not a webhook"),
        (DataverseServerError("unavailable", status=503), 1, "abm: Dataverse: DataverseServerError: status 503"),
    ],
)
def test_each_error_kind_ends_the_command_with_the_status_of_its_kind(
    error: Exception, status: int, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def command() -> int:
        raise error

    assert run_command(command) == status
    assert capsys.readouterr().err.startswith(printed)


def test_a_bug_keeps_its_traceback() -> None:
    def command() -> int:
        raise KeyError("x")

    with pytest.raises(KeyError):
        run_command(command)


def test_a_sync_that_went_on_past_failed_writes_exits_3_and_lists_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failure = {"channel": "scores", "items": 12, "error": "DataverseServerError: status 500"}

    def partial(*args: object, **kwargs: object) -> RunReport:
        return RunReport(now=datetime(2026, 11, 23, tzinfo=UTC), tenant={}, requests={"total": 3}, failures=[failure])

    monkeypatch.setattr(cli_main, "sync", partial)
    settings = {
        "DATAVERSE_URL": "https://org.invalid",
        "DATAVERSE_AUTH": "none",
        "ABM_SQLITE_PATH": str(tmp_path / "s"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert main(["sync", "--json"]) == PARTIAL_FAILURE == 3
    assert json.loads(capsys.readouterr().out)["failures"] == [failure]
    assert main(["sync"]) == 3
    assert "not written: 12 scores (DataverseServerError: status 500); due again next run" in capsys.readouterr().out
