"""`abm serve` as a user runs it: the installed command in a process of its own, its settings from the environment,
an emulator behind it; the anonymous health route, function keys as header and as `?code=`, a clean Ctrl+C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID
from tests.runtime_support import abm_command, webhook_body

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_KEY, REPLAY_KEY, API_KEY = "serve-hook-key-7f3a", "serve-replay-key-91bc", "serve-api-key-2d4e"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """An empty org: the schema (product tables, keys, change tracking) without rows is all the routes here need."""
    store = Store()
    try:
        with Emulator(store, EmulatorIdentity(CALLER_USER_ID)) as running:
            yield running
    finally:
        store.close()


def serve_environment(emulator: Emulator, state: Path) -> dict[str, str]:
    """The process environment with the app settings of this test only (none inherited from the caller's shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAVERSE_", "ABM_", "AzureWebJobs"))}
    return env | {
        "DATAVERSE_URL": emulator.org_url,
        "DATAVERSE_AUTH": "none",
        "ABM_STATE_STORE": "sqlite",
        "ABM_SQLITE_PATH": str(state),
        "ABM_WEBHOOK_KEY": WEBHOOK_KEY,
        "ABM_REPLAY_KEY": REPLAY_KEY,
        "ABM_API_KEY": API_KEY,
        "NO_PROXY": "127.0.0.1,localhost",
    }


def wait_until_listening(process: subprocess.Popen[bytes], url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"abm serve exited with {process.returncode} before listening")
        try:
            requests.get(f"{url}/api/health", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError(f"abm serve did not listen on {url} within {timeout} s")


def test_abm_serve_as_a_process_checks_keys_as_the_host_does_and_stops_on_ctrl_c(
    emulator: Emulator, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*abm_command(), "serve", "--port", str(port)],
            cwd=ROOT,
            env=serve_environment(emulator, tmp_path / "state.sqlite"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            wait_until_listening(process, url)
            health = requests.get(f"{url}/api/health", timeout=30)  # anonymous: no key
            assert health.status_code == 200, health.text
            assert health.headers["Content-Type"].startswith("application/json")
            assert health.json()["status"] == "ok"

            hook = f"{url}/api/dataverse/webhook"
            ignored = webhook_body("Assign", "contact", str(uuid.uuid4()), str(uuid.uuid4()))  # nothing to process
            missing = requests.post(hook, data=ignored, timeout=30)
            assert missing.status_code == 401
            assert requests.post(hook, data=ignored, params={"code": "wrong"}, timeout=30).status_code == 401
            header = requests.post(hook, data=ignored, headers={"x-functions-key": WEBHOOK_KEY}, timeout=30)
            assert header.status_code == 200 and header.json()["status"] == "ignored", header.text
            code = requests.post(hook, data=ignored, params={"code": WEBHOOK_KEY}, timeout=30)
            assert code.status_code == 200 and code.json()["status"] == "ignored", code.text
            # each function has its own key: the webhook's opens neither replay nor interactions
            replay = requests.post(f"{url}/api/replay", data=b"{}", params={"code": WEBHOOK_KEY}, timeout=30)
            assert replay.status_code == 401
            interactions = f"{url}/api/interactions"
            assert requests.post(interactions, data=b"{}", params={"code": WEBHOOK_KEY}, timeout=30).status_code == 401
            refused = requests.post(interactions, data=b"{}", headers={"x-functions-key": API_KEY}, timeout=30)
            assert refused.status_code == 400 and json.loads(refused.text)["error"]  # past the key, the body is bad
        finally:
            process.send_signal(signal.SIGINT)  # Ctrl+C
            try:
                returncode = process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
    assert returncode == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/health", timeout=2)
    printed = log.read_text()
    assert f"127.0.0.1:{port}" in printed and "/api/dataverse/webhook" in printed
    for key in (WEBHOOK_KEY, REPLAY_KEY, API_KEY):
        assert key not in printed  # neither the listing nor the request log shows a key
