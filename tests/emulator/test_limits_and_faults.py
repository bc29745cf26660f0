"""Service protection limits and injected faults, as a client on the wire sees them.

The limits, codes, messages and headers are those of Learn's "Service protection API limits",
https://learn.microsoft.com/power-apps/developer/data-platform/api-limits (LIMITS below).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable

import pytest
import requests

from abm.jobs.sync import sync
from abm_command.main import main
from devtools.emulator.limits import BURST_HEADER, TIME_HEADER, Faults, GuardConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from statestore.sqlite import SqliteStateStore
from tests.emulator.conftest import CALLER
from tests.runtime_support import NOW, abm_command, dataverse_state, demo_setup, fresh_client, tenant

HEADERS = {"Accept": "application/json"}
LIMITS = "https://learn.microsoft.com/power-apps/developer/data-platform/api-limits"


def who_am_i(emu: Emulator) -> requests.Response:
    return requests.get(emu.url + "WhoAmI", headers=HEADERS, timeout=5)


def test_requests_over_the_limit_get_429_with_retry_after_and_the_documented_code(store: Store) -> None:
    with Emulator(store, EmulatorIdentity(CALLER), guard=GuardConfig(limit_requests=3, limit_window=60)) as emu:
        statuses = [requests.get(emu.url + "WhoAmI", headers=HEADERS, timeout=5) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    throttled = statuses[-1]
    assert throttled.json()["error"]["code"] == "0x80072322"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert all("x-ms-dop-hint" in r.headers for r in statuses)


def test_faults_are_reproducible_from_the_seed(store: Store) -> None:
    def statuses(seed: int) -> list[int | str]:
        guard = GuardConfig(faults=Faults.parse(f"503=0.3,429=0.2,seed={seed}"))
        with Emulator(store, EmulatorIdentity(CALLER), guard=guard) as emu:
            return [requests.get(emu.url + "WhoAmI", headers=HEADERS, timeout=5).status_code for _ in range(30)]

    first = statuses(7)
    assert first == statuses(7)
    assert {200, 429, 503} <= set(first)
    assert first != statuses(8)


def test_a_reset_drops_the_connection_without_an_answer(store: Store) -> None:
    guard = GuardConfig(faults=Faults.parse("reset=1"))
    with Emulator(store, EmulatorIdentity(CALLER), guard=guard) as emu, pytest.raises(requests.ConnectionError):
        requests.get(emu.url + "WhoAmI", headers=HEADERS, timeout=5)


def test_a_lost_answer_still_applies_the_request(store: Store) -> None:
    guard = GuardConfig(faults=Faults.parse("lost=1"))
    with Emulator(store, EmulatorIdentity(CALLER), guard=guard) as emu, pytest.raises(requests.ConnectionError):
        requests.post(emu.url + "leads", json={"subject": "lost but made"}, headers=HEADERS, timeout=5)
    assert store.scalar("SELECT COUNT(*) FROM lead WHERE subject = 'lost but made'") == 1


@pytest.mark.parametrize("spec", ["429=2", "boom=0.1", "503=x", "503=0.6,429=0.6"])
def test_a_bad_fault_spec_is_refused_with_the_reason(spec: str) -> None:
    with pytest.raises(ValueError):
        Faults.parse(spec)


def test_more_concurrent_requests_than_allowed_get_the_concurrency_code(store: Store) -> None:
    guard = GuardConfig(max_concurrent=1, latency_ms=300)
    results: list[requests.Response] = []
    with Emulator(store, EmulatorIdentity(CALLER), guard=guard) as emu:
        threads = [
            threading.Thread(
                target=lambda: results.append(requests.get(emu.url + "WhoAmI", headers=HEADERS, timeout=5))
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    codes = sorted(r.status_code for r in results)
    assert codes[0] == 200 and 429 in codes
    assert {r.json()["error"]["code"] for r in results if r.status_code == 429} == {"0x80072326"}


def test_every_answer_says_the_requests_and_execution_time_left_in_the_window(store: Store) -> None:
    # LIMITS, "HTTP Response headers": x-ms-ratelimit-burst-remaining-xrm-requests is the remaining number of requests,
    # x-ms-ratelimit-time-remaining-xrm-requests the remaining combined duration. Learn gives no unit; the live answer
    # quoted in "Use PowerShell and Visual Studio Code with the Dataverse Web API" (after one WhoAmI: 5999 and
    # "1,200.00") shows seconds with a thousands separator and two decimals, of the default 6,000 requests and
    # 20 minutes per 5-minute window ("How Service Protection API Limits are enforced").
    with Emulator(store, EmulatorIdentity(CALLER)) as emu:
        first = who_am_i(emu)
        missing = requests.get(emu.url + "nosuchthings", headers=HEADERS, timeout=5)
    assert (first.headers[BURST_HEADER], first.headers[TIME_HEADER]) == ("5999", "1,200.00")
    assert missing.status_code == 404 and missing.headers[BURST_HEADER] == "5998"


def test_the_headers_count_down_from_the_configured_limits_and_refusals_cost_nothing(store: Store) -> None:
    # LIMITS, "HTTP Response headers"; a request refused by a limit did not run, so it spends no execution time.
    guard = GuardConfig(limit_requests=2, limit_time_ms=1000, latency_ms=100)
    with Emulator(store, EmulatorIdentity(CALLER), guard=guard) as emu:
        answers = [who_am_i(emu) for _ in range(3)]
    left = [(r.status_code, r.headers[BURST_HEADER], r.headers[TIME_HEADER]) for r in answers]
    assert left == [(200, "1", "0.90"), (200, "0", "0.80"), (429, "0", "0.80")]


def test_past_the_execution_time_limit_the_next_requests_get_429_with_the_documented_code(store: Store) -> None:
    # LIMITS, "Execution time": 0x80072321 and its message; "The Retry-After duration": the limits are exceeded before
    # they take effect, so the request that goes over runs (and its write is made); the ones after it are refused.
    guard = GuardConfig(limit_time_ms=1000, latency_ms=510)
    with Emulator(store, EmulatorIdentity(CALLER), guard=guard) as emu:
        under = who_am_i(emu)
        over = requests.post(emu.url + "leads", json={"subject": "past the limit"}, headers=HEADERS, timeout=5)
        refused = who_am_i(emu)
    assert (under.status_code, over.status_code, refused.status_code) == (200, 204, 429)
    assert store.scalar("SELECT COUNT(*) FROM lead WHERE subject = 'past the limit'") == 1
    assert refused.json()["error"] == {
        "code": "0x80072321",
        "message": "Combined execution time of incoming requests exceeded limit of 1,000 milliseconds over time "
        "window of 300 seconds. Decrease number of concurrent requests or reduce the duration of requests and try "
        "again later.",
    }
    assert 299 <= int(refused.headers["Retry-After"]) <= 300  # LIMITS, "Retry operations": whole seconds
    assert refused.headers[TIME_HEADER] == "0.00"


def test_once_the_time_spent_leaves_the_window_requests_are_admitted_again(store: Store) -> None:
    # LIMITS, "How Service Protection API Limits are enforced": a sliding window, refused until Retry-After has ended.
    guard = GuardConfig(limit_time_ms=50, limit_window=1, latency_ms=60)
    with Emulator(store, EmulatorIdentity(CALLER), guard=guard) as emu:
        first, refused = who_am_i(emu), who_am_i(emu)
        time.sleep(int(refused.headers["Retry-After"]))
        again = who_am_i(emu)
    assert (first.status_code, refused.status_code, again.status_code) == (200, 429, 200)
    assert refused.headers["Retry-After"] == "1"


def read_page(emu: Emulator, rows: int) -> requests.Response:
    return requests.get(emu.url + "leads?$select=subject", headers=HEADERS, timeout=5)


def create_multiple(emu: Emulator, rows: int) -> requests.Response:
    targets = [{"@odata.type": "Microsoft.Dynamics.CRM.lead", "subject": f"bulk {i}"} for i in range(rows)]
    url = emu.url + "leads/Microsoft.Dynamics.CRM.CreateMultiple"
    return requests.post(url, json={"Targets": targets}, headers=HEADERS, timeout=5)


def batch(emu: Emulator, rows: int) -> requests.Response:
    part = (
        "--batch_B\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "GET WhoAmI HTTP/1.1\r\n\r\n"
    )
    body = part * rows + "--batch_B--\r\n"
    headers = {**HEADERS, "Content-Type": "multipart/mixed; boundary=batch_B"}
    return requests.post(emu.url + "$batch", data=body.encode(), headers=headers, timeout=5)


@pytest.mark.parametrize(("rows", "next_status"), [(10, 200), (30, 429)])
@pytest.mark.parametrize("touch", [read_page, create_multiple, batch])
def test_each_row_a_request_touches_adds_to_its_execution_time(
    store: Store, touch: Callable[[Emulator, int], requests.Response], rows: int, next_status: int
) -> None:
    # LIMITS, "Execution time": batches and bulk work spend more of it. The emulator's cost is ROW_COST_MS (0.1 ms) a
    # row of a page, a target of a bulk message, a request of a $batch: 10 rows stay under 2 ms, 30 go over.
    store.insert_many(TABLES["lead"], [{"leadid": str(uuid.uuid4()), "subject": f"lead {i}"} for i in range(rows)])
    with Emulator(store, EmulatorIdentity(CALLER), guard=GuardConfig(limit_time_ms=2)) as emu:
        touched = touch(emu, rows)
        after = who_am_i(emu)
    assert touched.status_code == 200
    assert after.status_code == next_status


def test_a_sync_under_a_tight_execution_time_limit_ends_as_one_without_it() -> None:
    # LIMITS, "Retry operations": a client that waits Retry-After and sends the request again loses nothing. 600 ms per
    # 1 s window against a sync that spends ~1,500 ms (5,000-row pages at 500 ms): reads and writes wait a second.
    setup = demo_setup()
    with tenant() as (emulator, client):
        sync(fresh_client(emulator), SqliteStateStore(), setup, now=NOW)
        expected = dataverse_state(client)
    with tenant(guard=GuardConfig(limit_time_ms=600, limit_window=1)) as (emulator, client):
        sync(fresh_client(emulator), SqliteStateStore(), setup, now=NOW)
        assert emulator.guard.refused["0x80072321"] > 0
        assert dataverse_state(client) == expected


def test_abm_emulator_takes_the_execution_time_limit_and_its_window_from_the_command_line() -> None:
    # LIMITS, "Execution time": `abm emulator --limit-time MS --limit-window S` set the limit the 429s quote.
    command = [*abm_command(), "emulator", "--limit-time", "5", "--limit-window", "60", "--latency-ms", "10"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        try:
            assert process.stdout is not None
            api = process.stdout.readline().split()[-1]  # "Dataverse emulator listening on <url>"
            answers = [requests.get(api + "WhoAmI", headers=HEADERS, timeout=5) for _ in range(2)]
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
    assert [r.status_code for r in answers] == [200, 429]
    assert "exceeded limit of 5 milliseconds over time window of 60 seconds" in answers[1].json()["error"]["message"]
    assert process.returncode == 0


def test_abm_emulator_help_says_what_the_limits_do(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["emulator", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--limit-time MS 429 (0x80072321) past MS milliseconds of combined execution time per window" in text
    assert "--limit-window SECONDS the sliding window of --limit-requests and --limit-" in text
    assert "(default: Dataverse's 1200000)" in text and "(default: Dataverse's 300)" in text
