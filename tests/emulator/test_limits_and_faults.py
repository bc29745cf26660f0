"""Service protection limits and injected faults, as a client on the wire sees them."""

from __future__ import annotations

import threading

import pytest
import requests

from devtools.emulator.limits import Faults, GuardConfig
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from tests.emulator.conftest import CALLER

HEADERS = {"Accept": "application/json"}


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
