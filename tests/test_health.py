"""`GET /api/health` (anonymous) called as the host calls it, over real HTTP to the emulator or a loopback stand-in:
one entry per check, 200 only when all pass, 503 naming the problem, and never a secret."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import azure.functions as func
import pytest

import function_app.health as health_module
from abm import bootstrap
from abm.admin.health import check_health, redact, secret_values
from abm.admin.provision import ProvisionError, provision
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.transport import TransportConfig
from devtools.emulator.metadata import Metadata
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from function_app.health import health
from tests.emulator.conftest import CALLER, seed
from tests.loopback import ORG_ID, USER_ID, loopback_dataverse, url_of

CHECKS = ["settings", "dataverse", "product_tables", "change_tracking", "definitions"]
STORAGE = "DefaultEndpointsProtocol=https;AccountName=abmstore;AccountKey=c2VjcmV0LWFjY291bnQta2V5LTEyMzQ=;"


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    bootstrap.reset()
    health_module.reset_cache()
    yield monkeypatch
    bootstrap.reset()
    health_module.reset_cache()


@contextmanager
def running(metadata: Metadata | None = None) -> Iterator[Emulator]:
    store = Store()
    seed(store)
    try:
        with Emulator(store, EmulatorIdentity(CALLER), metadata=metadata) as emu:
            yield emu
    finally:
        store.close()


def call_health() -> tuple[int, dict[str, Any], str]:
    request = func.HttpRequest("GET", "/api/health", headers={}, params={}, body=b"")
    response = health.build().get_user_function()(request)
    text = response.get_body().decode()
    return response.status_code, json.loads(text), text


def point_at(monkeypatch: pytest.MonkeyPatch, emu: Emulator) -> None:
    monkeypatch.setenv("DATAVERSE_URL", emu.org_url)
    monkeypatch.setenv("DATAVERSE_AUTH", "none")


def test_a_complete_org_is_healthy_with_one_entry_per_check_and_no_identifying_details(
    fresh: pytest.MonkeyPatch,
) -> None:
    with running() as emu:
        point_at(fresh, emu)
        status, body, text = call_health()
    assert status == 200
    assert body["status"] == "ok"
    assert list(body["checks"]) == CHECKS
    assert all(check == {"ok": True} for check in body["checks"].values())
    assert emu.org_url not in text and CALLER not in text  # anonymous: no org URL, no application user


def test_the_answer_is_reused_for_a_while_so_anonymous_calls_cannot_drain_the_api_limits(
    fresh: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []
    with running() as emu:
        point_at(fresh, emu)
        for _ in range(3):
            call_health()
            seen.append(bootstrap.shared_client().stats.total)
    assert seen == [11, 11, 11]  # WhoAmI, six table definitions, and the four tables the definitions name, once


def test_an_org_without_the_product_schema_answers_503_naming_what_is_missing(fresh: pytest.MonkeyPatch) -> None:
    with running(Metadata(product=False, change_tracking={"contact": False})) as emu:
        point_at(fresh, emu)
        status, body, _ = call_health()
    assert status == 503 and body["status"] == "unavailable"
    checks = body["checks"]
    assert checks["settings"]["ok"] and checks["dataverse"]["ok"]
    assert checks["product_tables"] == {
        "ok": False,
        "problem": "table abm_interaction does not exist (run abm provision); "
        "table abm_leadscore does not exist (run abm provision)",
    }
    assert checks["change_tracking"]["ok"] is False
    assert checks["change_tracking"]["tables"] == ["contact", "abm_interaction", "abm_leadscore"]
    assert "Track changes" in checks["change_tracking"]["problem"]


def test_a_key_whose_index_is_not_active_yet_is_the_problem(fresh: pytest.MonkeyPatch) -> None:
    with running(Metadata(product=False, key_reads_pending=1000)) as emu:
        client = DataverseClient(TransportConfig(org_url=emu.org_url), NoAuth())
        with pytest.raises(ProvisionError):
            provision(client, wait=0.0, sleep=lambda s: None)
        point_at(fresh, emu)
        status, body, _ = call_health()
    assert status == 503
    assert body["checks"]["product_tables"]["problem"] == (
        "abm_leadscore alternate key (abm_leadid, abm_model) is Pending, not Active"
    )
    assert "tables" not in body["checks"]["change_tracking"]  # provision created the product's tables tracked


def test_missing_settings_answer_503_naming_them_and_no_secret(fresh: pytest.MonkeyPatch) -> None:
    fresh.delenv("DATAVERSE_URL", raising=False)
    fresh.setenv("DATAVERSE_AUTH", "client_secret")
    fresh.setenv("DATAVERSE_CLIENT_SECRET", "do-not-show-client-secret")
    status, body, text = call_health()
    assert status == 503
    problem = body["checks"]["settings"]["problem"]
    assert "DATAVERSE_URL" in problem and "DATAVERSE_TENANT_ID" in problem
    assert body["checks"]["dataverse"]["ok"] is False
    assert body["checks"]["product_tables"]["problem"] == "not checked: Dataverse is not reachable"
    assert "do-not-show-client-secret" not in text


def health_failing_with(
    env: pytest.MonkeyPatch, server: Any, status: int, code: str, message: str
) -> tuple[int, dict[str, Any], str]:
    """The health answer while every Dataverse request gets this error (a static token, which must not show)."""
    server.fail_with = (status, {"error": {"code": code, "message": message}})
    env.setenv("DATAVERSE_URL", url_of(server))
    env.setenv("DATAVERSE_AUTH", "static_token")
    env.setenv("DATAVERSE_STATIC_TOKEN", "loop-token-do-not-show")
    return call_health()


def test_a_dataverse_error_answers_503_with_its_status_code_and_request_id(fresh: pytest.MonkeyPatch) -> None:
    with loopback_dataverse() as server:
        status, body, text = health_failing_with(fresh, server, 401, "", "BadAuthTicket")
    assert status == 503
    dataverse = body["checks"]["dataverse"]
    assert dataverse["problem"] == "WhoAmI failed: BadAuthTicket"
    assert (dataverse["error"]["type"], dataverse["error"]["status"]) == ("DataverseAuthError", 401)
    assert dataverse["error"]["request_id"] == "loopback-1"
    assert server.seen[0]["authorization"] == "Bearer loop-token-do-not-show"
    assert "loop-token-do-not-show" not in text


def test_no_secret_setting_value_ever_appears_even_when_a_failing_check_quotes_it(
    fresh: pytest.MonkeyPatch,
) -> None:
    secrets = {
        "DATAVERSE_STATIC_TOKEN": "static-token-value-1234",
        "ABM_WEBHOOK_KEY": "webhook-key-value-5678",
        "ABM_REPLAY_KEY": "replay-key-value-9012",
        "ABM_API_KEY": "api-key-value-3456",
        "AzureWebJobsStorage": STORAGE,
    }
    for name, value in secrets.items():
        fresh.setenv(name, value)

    def leaky_state_store() -> None:
        raise ConnectionError(f"cannot reach storage with {STORAGE} (key c2VjcmV0LWFjY291bnQta2V5LTEyMzQ=)")

    fresh.setattr(health_module, "extra_checks", lambda: {"state_store": leaky_state_store})
    with running() as emu:
        point_at(fresh, emu)
        fresh.setenv("DATAVERSE_AUTH", "static_token")
        status, body, text = call_health()
    assert status == 503
    assert list(body["checks"]) == [*CHECKS[:4], "state_store"]  # the extra checks replaced
    assert body["checks"]["state_store"]["problem"].startswith("ConnectionError: cannot reach storage with ***")
    for value in [*secrets.values(), "c2VjcmV0LWFjY291bnQta2V5LTEyMzQ="]:
        assert value not in text


def test_extra_checks_pass_or_fail_by_name() -> None:
    with running() as emu:
        client = DataverseClient(TransportConfig(org_url=emu.org_url), NoAuth())

        def broken() -> None:
            raise RuntimeError("table storage answered 403")

        report = check_health(lambda: client, extra_checks={"fine": lambda: None, "state_store": broken})
    assert not report.ok
    assert report.checks["fine"].ok
    assert report.as_dict()["checks"]["state_store"] == {
        "ok": False,
        "problem": "RuntimeError: table storage answered 403",
    }


def test_whoami_still_checks_only_whoami_and_shows_the_application_user() -> None:
    with loopback_dataverse() as server:
        client = DataverseClient(TransportConfig(org_url=url_of(server)), NoAuth())
        report = check_health(lambda: client)
    assert report.ok and len(server.seen) == 1
    body = report.as_dict()
    assert body["dataverse"]["user_id"] == USER_ID and body["dataverse"]["organization_id"] == ORG_ID


def test_redaction_reaches_every_string_and_covers_the_storage_account_key() -> None:
    secrets = secret_values({"AzureWebJobsStorage": STORAGE, "ABM_API_KEY": "k" * 20, "DATAVERSE_URL": "https://x"})
    assert "c2VjcmV0LWFjY291bnQta2V5LTEyMzQ=" in secrets and "https://x" not in secrets
    found = redact({"a": ["x " + "k" * 20], "b": {"c": "c2VjcmV0LWFjY291bnQta2V5LTEyMzQ="}, "n": 1}, secrets)
    assert found == {"a": ["x ***"], "b": {"c": "***"}, "n": 1}
    assert redact(str(uuid.UUID(int=1)), secrets) == str(uuid.UUID(int=1))


def test_ids_urls_and_hosts_quoted_by_an_error_are_masked_for_anonymous_callers(fresh: pytest.MonkeyPatch) -> None:
    user, org = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "11111111-2222-3333-4444-555555555555"
    message = (
        f"The user with SystemUserId={user} in OrganizationContext={org} is disabled; "
        "see https://contoso.crm4.dynamics.com/main.aspx or contoso.crm4.dynamics.com"
    )
    with loopback_dataverse() as server:
        status, body, text = health_failing_with(fresh, server, 403, "0x80040225", message)
    assert status == 503
    dataverse = body["checks"]["dataverse"]
    assert dataverse["problem"] == (
        "WhoAmI failed: The user with SystemUserId=<id> in OrganizationContext=<id> is disabled; see <url> or <host>"
    )
    assert dataverse["error"]["code"] == "0x80040225" and dataverse["error"]["request_id"] == "loopback-1"
    for revealing in (user, org, "contoso", "127.0.0.1"):
        assert revealing not in text
