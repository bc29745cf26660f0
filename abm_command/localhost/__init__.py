"""A local Functions host for machines without Azure Functions Core Tools (`abm serve`).

It indexes any `azure.functions.FunctionApp` the way the Python worker does (`get_functions()` and each function's
binding JSON), serves the HTTP triggers under host.json's route prefix on a stdlib `ThreadingHTTPServer`, checks
function keys the way the Functions host does in Azure (which `func start` does not), and runs storage-queue
triggers in memory: queue output bindings, retries up to host.json `maxDequeueCount`, then `<queue>-poison`.
Timer triggers are listed, not scheduled (`LocalHost.run_timer` runs one on demand).

A development and test convenience, not the Functions host: no blobs, tables, Durable, scale-out or restarts.

- `indexing`: the app as the worker indexes it, host.json, and a function invoked as the worker invokes it;
- `routes`: route templates compiled, ordered and matched; `keys`: function keys checked;
- `adapter`: a request as the function receives it, its answer as it goes on the wire;
- `server`: the HTTP server loop (bodies, limits, keep-alive, errors); `queues`: the storage queues in memory;
- `host`: `LocalHost`, all of them started and closed as one.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import IO

import azure.functions as func

from abm_command.localhost.host import LocalHost
from abm_command.localhost.indexing import HostConfigError, InvocationContext
from abm_command.localhost.routes import RouteInfo
from abm_command.localhost.server import MAX_REQUEST_BODY

__all__ = ["MAX_REQUEST_BODY", "HostConfigError", "InvocationContext", "LocalHost", "RouteInfo", "run_local_host"]


def run_local_host(
    app: func.FunctionApp,
    *,
    keys: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int = 7071,
    app_root: Path | None = None,
    retry_delay: float = 1.0,
    settings: Mapping[str, str] | None = None,
    stream: IO[str] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """`abm serve`: serve until Ctrl+C (or `stop` is set); prints one line to stderr with the URL and the routes
    with their auth levels, never a key. Returns a process exit code."""
    out = stream if stream is not None else sys.stderr
    try:
        local = LocalHost(
            app, keys=keys, host=host, port=port, app_root=app_root, retry_delay=retry_delay, settings=settings
        )
    except OSError as exc:
        print(f"abm serve: cannot listen on {host}:{port} ({exc.strerror or exc})", file=out)
        return 1
    except HostConfigError as exc:
        print(f"abm serve: {exc}", file=out)
        return 1
    with local:
        print(f"abm serve: {local.describe()}", file=out, flush=True)
        with suppress(KeyboardInterrupt):
            (stop or threading.Event()).wait()
    return 0
