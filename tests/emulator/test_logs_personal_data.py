"""No personal data in logs at any verbosity: every command of `abm` run against the synthetic tenant in the
emulator, quiet and with `-v`, and its stderr (the logs and the error lines) searched for every account name,
person's name, email address and phone number the tenant holds. Standard output is the command's answer (a table
may name an account), so it is not searched."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from abm_command.errors import run_command
from abm_command.main import main
from dataverse.errors import DataverseBadRequest
from dataverse.query import Query
from dataverse.tables import table
from tests.runtime_support import outsider_contact, tenant

PERSONAL_COLUMNS = {
    "account": ("name", "telephone1", "websiteurl"),
    "contact": ("fullname", "firstname", "lastname", "emailaddress1", "telephone1"),
    "lead": ("fullname", "companyname", "emailaddress1", "telephone1"),
}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, set[str], dict[str, str]]]:
    """A settings file naming the emulator, every personal value of the tenant, and ids to name in commands."""
    folder = tmp_path_factory.mktemp("logs")
    with tenant() as (emulator, client):
        values = {
            "DATAVERSE_URL": emulator.org_url,
            "DATAVERSE_AUTH": "none",
            "ABM_STATE_STORE": "sqlite",
            "ABM_SQLITE_PATH": str(folder / "state.sqlite"),
        }
        settings = folder / "local.settings.json"
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        personal: set[str] = set()
        for name, columns in PERSONAL_COLUMNS.items():
            query = Query(table(name).entity_set).select(*columns)
            for row in client.iter_rows(query):
                personal |= {str(row[c]) for c in columns if row.get(c) and len(str(row[c])) >= 4}
        account = next(iter(client.iter_rows(Query(table("account").entity_set).select("accountid"))))["accountid"]
        lead = next(iter(client.iter_rows(Query(table("lead").entity_set).select("leadid"))))["leadid"]
        ids = {"account": str(account), "lead": str(lead), "contact": outsider_contact(client)}
        yield str(settings), personal, ids


def commands(ids: dict[str, str]) -> list[list[str]]:
    """Every command that reads or writes the org or the state store, as a user runs them."""
    return [
        ["whoami"],
        ["sync"],  # the first is a full read, writes and all
        ["sync", "--json"],  # incremental
        ["sync", "--full", "--dry-run", "--json"],
        ["score", "--lead", ids["lead"]],
        ["replay", "--record", "contact", ids["contact"], "--dry-run"],
        ["replay", "--event", "no-such-event"],
        ["deadletters"],
        ["insights", "account", ids["account"]],
        ["insights", "journey", "abm-nurture", "--account", ids["account"]],
        ["insights", "cohorts", "--include", "OpportunityCreated", "--return", "OpportunityWon"],
        ["insights", "flows", "--ends-with", "FormSubmitted", "--dimension", "content_type"],
        ["insights", "paths", "--steps", "FormSubmitted,LeadCreated", "--account", ids["account"]],
        ["provision", "--dry-run"],
        ["register-webhook", "--url", "https://example.invalid/api/dataverse/webhook", "--dry-run"],
    ]


@pytest.mark.parametrize("verbosity", [[], ["-v"]], ids=["quiet", "verbose"])
def test_no_command_logs_a_name_an_address_or_a_phone(
    org: tuple[str, set[str], dict[str, str]], verbosity: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, personal, ids = org
    pattern = re.compile("|".join(re.escape(value) for value in sorted(personal, key=len, reverse=True)))
    requests_logged = 0
    for argv in commands(ids):
        main([*verbosity, "--settings", settings, *argv])
        err = capsys.readouterr().err
        found = pattern.search(err)
        assert found is None, f"abm {' '.join(argv)}: stderr holds {found.group(0)!r}"
        requests_logged += err.count("DEBUG dataverse: ")
    assert (requests_logged > 30) == bool(verbosity)  # -v logs each request: the search had something to search
    logging.getLogger().handlers.clear()  # the next test's capture gets handlers of its own


def test_a_dataverse_error_is_printed_by_its_kind_never_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    def failing() -> int:
        raise DataverseBadRequest(
            "A record with Full Name 'Siobhán O'Brien' (siobhan@contoso.example.com) already exists",
            status=400,
            code="0x80040333",
            request_id=str(uuid.uuid4()),
        )

    assert run_command(failing) == 1
    err = capsys.readouterr().err
    assert "Siobh" not in err and "contoso" not in err
    assert "DataverseBadRequest" in err and "0x80040333" in err


def test_the_libraries_stay_quiet_with_verbose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["-v", "settings"])
    for name in ("urllib3", "azure", "msal", "requests"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("dataverse").getEffectiveLevel() == logging.DEBUG
    capsys.readouterr()
    logging.getLogger().handlers.clear()
