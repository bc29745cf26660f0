"""Azurite, the Azure Storage emulator, for the tests of the Azure state store: one process per test session.

`scripts/test.sh` installs the pinned `azurite` npm package into `.tools/`. Azurite listens on port 0 (the system
picks free ports) and prints where it listens; the fixture reads those ports, waits until they accept connections and
yields a connection string with explicit endpoints for Azurite's well-known development account.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / ".tools" / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every Azurite): not a secret.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST = "127.0.0.1"
SERVICES = ("blob", "queue", "table")
LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)")


def connection_string(ports: dict[str, int]) -> str:
    endpoints = ";".join(f"{s.capitalize()}Endpoint=http://{HOST}:{ports[s]}/{ACCOUNT}" for s in SERVICES)
    return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};{endpoints};"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def running(timeout: float = 30.0) -> Iterator[str]:
    """Start Azurite in memory on free ports, yield its connection string, stop it on exit."""
    if not BINARY.exists():
        pytest.fail(f"Azurite is not installed ({BINARY.relative_to(ROOT)} is missing): run scripts/test.sh")
    with tempfile.TemporaryDirectory(prefix="azurite-") as work:
        out_path, err_path = Path(work, "stdout"), Path(work, "stderr")
        args = [
            str(BINARY),
            "--inMemoryPersistence",
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        for service in SERVICES:
            args += [f"--{service}Host", HOST, f"--{service}Port", "0"]
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(args, cwd=work, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            ports: dict[str, int] = {}
            deadline = time.monotonic() + timeout
            while not (len(ports) == len(SERVICES) and all(_accepts(p) for p in ports.values())):
                if process.poll() is not None or time.monotonic() > deadline:
                    code = process.poll()
                    state = f"it exited with {code}" if code is not None else f"not listening after {timeout:.0f} s"
                    raise RuntimeError(
                        f"Azurite did not start ({state}); stderr:\n{err_path.read_text()}\n"
                        f"stdout:\n{out_path.read_text()}"
                    )
                time.sleep(0.05)
                ports = {s.lower(): int(p) for s, p in LISTENING.findall(out_path.read_text())}
            yield connection_string(ports)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A connection string to one Azurite for the whole session (tests isolate themselves by table prefix)."""
    with running() as conn:
        yield conn
