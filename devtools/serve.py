"""`abm emulator`: serve the Dataverse emulator until SIGINT or SIGTERM; prints its URL once it accepts connections."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime
from types import FrameType

from devtools.demo import load_tenant
from devtools.emulator.limits import Faults, GuardConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID

__all__ = ["serve_emulator"]


def serve_emulator(args: argparse.Namespace, *, now: datetime) -> int:
    store = Store(args.db)
    if store.count(TABLES["systemuser"]) == 0:
        load_tenant(store, args.size, seed=args.seed, now=now, progress=sys.stderr)
    guard = GuardConfig(
        limit_requests=args.limit_requests,
        limit_time_ms=args.limit_time,
        limit_window=args.limit_window,
        faults=Faults.parse(args.faults),
        latency_ms=args.latency_ms,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with Emulator(store, EmulatorIdentity(CALLER_USER_ID), host=args.host, port=args.port, guard=guard) as emulator:
        print(f"Dataverse emulator listening on {emulator.url}", flush=True)
        stop.wait()
    store.close()
    print("emulator stopped", file=sys.stderr)
    return 0
