"""Benchmark: reading N rows through the client keeps memory bounded by one page, and costs N / page_size requests.

Serves synthetic contact pages from a loopback HTTP server (real sockets, real JSON) and reads them with
`DataverseClient.iter_rows`, measuring Python heap peak with tracemalloc and wall time. Run:

    .venv/bin/python benchmarks/paging_memory.py --rows 200000 --page-size 5000
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import tracemalloc
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.query import Query
from dataverse.transport import TransportConfig


def make_server(total: int, page_size: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            start = int(parse_qs(urlsplit(self.path).query).get("start", ["0"])[0])
            end = min(start + page_size, total)
            body: dict[str, Any] = {
                "value": [
                    {
                        "contactid": str(uuid.UUID(int=i)),
                        "fullname": f"Contact number {i}",
                        "emailaddress1": f"contact{i}@example.com",
                        "_parentcustomerid_value": str(uuid.UUID(int=i // 20)),
                    }
                    for i in range(start, end)
                ]
            }
            if end < total:
                host, port = self.server.server_address[:2]
                body["@odata.nextLink"] = f"http://{host}:{port}/api/data/v9.2/contacts?start={end}"
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=5000)
    args = parser.parse_args()
    server = make_server(args.rows, args.page_size)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    client = DataverseClient(TransportConfig(org_url=f"http://{host}:{port}"), NoAuth(), page_size=args.page_size)
    tracemalloc.start()
    started = time.perf_counter()
    count = sum(1 for _ in client.iter_rows(Query("contacts").select("fullname")))
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    server.shutdown()
    print(
        json.dumps(
            {
                "rows": count,
                "page_size": args.page_size,
                "requests": client.stats.total,
                "seconds": round(elapsed, 2),
                "rows_per_second": int(count / elapsed),
                "peak_heap_mib": round(peak / 2**20, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
