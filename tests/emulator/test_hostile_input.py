"""No 5xx for anything a caller sends: a corpus of malformed requests, generated per parameter of every HTTP route
(lone surrogates, calendar extremes, control characters, trailing newlines, unbalanced GUID braces, oversized
numbers, wrong JSON types, deep nesting, very long values), sent over real HTTP to `abm serve`'s host in front of
the Function app and the emulator. Each answer is below 500 and a JSON object (an error names the problem)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

import function_app
from abm import bootstrap
from abm.jobs.sync import sync
from abm.settings import Settings, function_keys
from abm_command.localhost import LocalHost
from tests.runtime_support import NOW, outsider_contact, tenant

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"ABM_WEBHOOK_KEY": "hook-key-1", "ABM_REPLAY_KEY": "replay-key-2", "ABM_API_KEY": "api-key-3"}
GUID = "6a3e2b1c-0d4f-4e5a-9b8c-7d6e5f4a3b2c"

# Text a caller may send in any field or parameter.
TEXTS = [
    "\ud800",  # a lone surrogate
    "a\udfffb",
    "0001-01-01T00:00:00+14:00",  # the calendar's first moment, before UTC
    "9999-12-31T23:59:59-14:00",  # its last, after UTC
    "0001-01-01",
    "9999-12-31",
    f"{GUID}\n",  # a trailing newline
    "{" + GUID,  # an unbalanced brace
    GUID + "}",
    "urn:uuid:" + GUID,
    "1" * 400,  # an unbounded integer
    "-1",
    "1e999",
    "NaN",
    "",
    " ",
    "\x00",
    "tab\there",
    "x" * 3000,
    "💥",
    "EmailOpened>=99999999999999999999",
    "../../etc/passwd",
    "'; DROP TABLE x; --",
]
# JSON values beside the texts: every other type, numbers at the limits, deep nesting.
VALUES: list[Any] = [*TEXTS, None, True, 0, -1, 10**400, 1.5e308, 0.5, [], [GUID], {}, {"a": 1}]
DEEP = "[" * 100_000 + "]" * 100_000

INSIGHTS: dict[str, list[str]] = {
    "insights/cohorts": ["include", "return", "include_match", "return_match", "granularity", "container", "type"],
    "insights/flows": ["dimension", "starts_with", "ends_with", "occurrence", "repeats", "columns", "limit"],
    "insights/paths": ["steps", "account", "percent", "container"],
}
VALID = {
    "insights/cohorts": {"include": "OpportunityCreated", "return": "OpportunityWon"},
    "insights/flows": {"ends_with": "FormSubmitted"},
    "insights/paths": {"steps": "FormSubmitted,LeadCreated"},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalHost, str]]:
    """The host, and a contact the tenant holds (so that a request is not refused for naming an unknown one)."""
    path = str(tmp_path_factory.mktemp("hostile") / "state.sqlite")
    with tenant() as (emulator, client), pytest.MonkeyPatch.context() as env:
        values = {
            "DATAVERSE_URL": emulator.org_url,
            "DATAVERSE_AUTH": "none",
            "ABM_STATE_STORE": "sqlite",
            "ABM_SQLITE_PATH": path,
            **KEYS,
        }
        for name, value in values.items():
            env.setenv(name, value)
        bootstrap.reset()
        runtime = bootstrap.shared_runtime()
        sync(runtime.client, runtime.store, runtime.setup, now=NOW)
        with LocalHost(function_app.app, keys=function_keys(Settings.from_env(values)), app_root=ROOT) as host:
            yield host, outsider_contact(client)
        bootstrap.reset()


@pytest.fixture
def host(served: tuple[LocalHost, str]) -> LocalHost:
    return served[0]


def encoded(text: str) -> str:
    """A value as a URL carries it: UTF-8, percent-encoded; a lone surrogate as the bytes a careless sender sends."""
    return quote(text, safe="", errors="surrogatepass")


def checked(answer: requests.Response, what: str) -> None:
    assert answer.status_code < 500, f"{what}: {answer.status_code} {answer.text[:200]}"
    assert answer.status_code != 401, f"{what}: the test sent the wrong key"
    body = answer.json()
    assert isinstance(body, dict), what
    if answer.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"], what
        assert "Traceback" not in body["error"], what


def get(host: LocalHost, route: str, query: str, key: str = KEYS["ABM_API_KEY"]) -> requests.Response:
    return requests.get(f"{host.url}/api/{route}?code={key}&{query}", timeout=60)


def post(host: LocalHost, route: str, body: bytes, key: str) -> requests.Response:
    return requests.post(f"{host.url}/api/{route}?code={key}", data=body, timeout=60)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_no_insights_parameter_gets_a_5xx(host: LocalHost) -> None:
    for route, names in INSIGHTS.items():
        for name in [*names, "from", "to", "unknown"]:
            for text in TEXTS:
                base = {k: v for k, v in VALID[route].items() if k != name}
                query = "&".join([*(f"{k}={encoded(v)}" for k, v in base.items()), f"{name}={encoded(text)}"])
                checked(get(host, route, query), f"{route} {name}={text[:40]!r}")
    for text in TEXTS:
        checked(get(host, f"insights/accounts/{encoded(text) or 'x'}", ""), f"account id {text[:40]!r}")
        checked(get(host, f"insights/journeys/{encoded(text) or 'x'}", ""), f"journey name {text[:40]!r}")
        for name in ("from", "to"):
            checked(get(host, f"insights/accounts/{GUID}", f"{name}={encoded(text)}"), f"account {name}={text!r}")
        checked(get(host, "insights/journeys/abm-nurture", f"account={encoded(text)}"), f"journey account={text!r}")


def test_no_replay_body_gets_a_5xx(host: LocalHost) -> None:
    key = KEYS["ABM_REPLAY_KEY"]
    window = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z"}
    for value in VALUES:
        bodies = [
            {"event": value, "dry_run": True},
            {"table": value, "id": GUID, "dry_run": True},
            {"table": "contact", "id": value, "dry_run": True},
            {**window, "since": value, "dry_run": True},
            {**window, "until": value, "dry_run": True},
            {"event": "x", "dry_run": value},
            value,
        ]
        for body in bodies:
            checked(post(host, "replay", dumps(body), key), f"replay {json.dumps(body)[:80]}")
    for raw in (b"", b"{", b"\xff\xfe", DEEP.encode(), b'{"event": "x", "event": 1}'):
        checked(post(host, "replay", raw, key), f"replay raw {raw[:20]!r}")


def test_no_interactions_body_gets_a_5xx(served: tuple[LocalHost, str]) -> None:
    host, contact = served
    key = KEYS["ABM_API_KEY"]
    event = {
        "id": "e1",
        "source": "website",
        "type": "WebsiteVisited",
        "contact_id": contact,
        "occurred_on": "2026-11-20T10:00:00Z",
    }
    for value in VALUES:
        for field in [*event, "asset", "campaign", "content_type", "extra"]:
            body = {"events": [{**event, field: value}]}
            checked(post(host, "interactions", dumps(body), key), f"interactions {field}={str(value)[:40]!r}")
        checked(post(host, "interactions", dumps({"events": value}), key), f"interactions events={str(value)[:40]!r}")
        checked(post(host, "interactions", dumps(value), key), f"interactions body {str(value)[:40]!r}")
    checked(post(host, "interactions", DEEP.encode(), key), "interactions deep")
    # A known contact's id with a trailing newline is not that contact (a schema's `$` must not let it through).
    answer = post(host, "interactions", dumps({"events": [{**event, "contact_id": f"{contact}\n"}]}), key)
    assert answer.status_code == 400 and answer.json()["path"] == "events[0].contact_id"


def test_no_webhook_body_gets_a_5xx(served: tuple[LocalHost, str]) -> None:
    host, contact = served
    key = KEYS["ABM_WEBHOOK_KEY"]
    context = {
        "MessageName": "Update",
        "PrimaryEntityName": "contact",
        "PrimaryEntityId": contact,
        "OperationId": str(uuid.uuid4()),
        "Depth": 1,
        "CorrelationId": str(uuid.uuid4()),
        "InputParameters": [],
        "PostEntityImages": [],
    }
    for value in VALUES:
        for field in context:
            checked(post(host, "dataverse/webhook", dumps({**context, field: value}), key), f"webhook {field}")
        checked(post(host, "dataverse/webhook", dumps(value), key), f"webhook body {str(value)[:40]!r}")
    checked(post(host, "dataverse/webhook", DEEP.encode(), key), "webhook deep")


def test_an_overlong_url_and_unknown_routes_answer_json(host: LocalHost) -> None:
    checked(get(host, "insights/cohorts", "include=" + "x" * 20_000), "a 20,000-character URL")
    checked(requests.get(f"{host.url}/api/nothing-here", timeout=30), "an unknown route")
    checked(requests.get(f"{host.url}/api/health?{encoded(chr(0xD800))}=1", timeout=30), "health with a surrogate")
