"""The local Functions host (`abm serve`) over real HTTP on loopback: routing, keys, limits, errors, queues."""

from __future__ import annotations

import hmac
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests

from abm_command.localhost import LocalHost, RouteInfo, run_local_host

ROOT = Path(__file__).resolve().parent.parent
ITEMS_KEY = "items-key-0123456789"
OTHER_KEY = "other-key-9876543210"
KEYS = {"items": ITEMS_KEY, "other": OTHER_KEY, "admin_thing": "admin-key"}

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
seen: dict[str, list[Any]] = {}
seen_lock = threading.Lock()
release_slow = threading.Event()


def record(name: str, value: Any) -> None:
    with seen_lock:
        seen.setdefault(name, []).append(value)


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@app.route(route="items/{item_id}/{detail?}", methods=["GET", "POST"])
def items(req: func.HttpRequest, context: Any) -> func.HttpResponse:
    return json_response(
        {
            "method": req.method,
            "route_params": dict(req.route_params),
            "params": dict(req.params),
            "body": req.get_body().decode(),
            "header": req.headers.get("x-custom"),
            "function": context.function_name,
            "invocation_id": context.invocation_id,
        }
    )


@app.route(route="other", methods=["GET"])
def other(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"other": True})


@app.route(route="unkeyed", methods=["GET"])
def unkeyed(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"unkeyed": True})


@app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def open_route(req: func.HttpRequest) -> str:
    return "plain text"


@app.route(route="admin/thing", auth_level=func.AuthLevel.ADMIN)
def admin_thing(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"admin": True})


@app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("internal detail 4711")


@app.route(route="jobs", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="jobs", queue_name="jobs", connection="AzureWebJobsStorage")
def submit(req: func.HttpRequest, jobs: func.Out[Any]) -> func.HttpResponse:
    request = req.get_json()
    jobs.set(request["jobs"])  # a str, a list of str, or (wrongly) anything else
    return json_response({"queued": True}, 202)


@app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="done", queue_name="done", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage, done: func.Out[str]) -> None:
    job = json.loads(msg.get_body())
    record("work", (job["id"], msg.dequeue_count))
    if msg.dequeue_count <= job.get("fail", 0):
        raise RuntimeError(f"job {job['id']} fails on try {msg.dequeue_count}")
    done.set(job["id"])


@app.queue_trigger(arg_name="msg", queue_name="jobs-poison", connection="AzureWebJobsStorage")
def poisoned(msg: func.QueueMessage) -> None:
    job = json.loads(msg.get_body())
    record("poison", (job["id"], msg.dequeue_count))
    if job.get("poison_fails"):
        raise RuntimeError("the poison handler fails too")


@app.queue_trigger(arg_name="msg", queue_name="slow", connection="AzureWebJobsStorage")
def slow(msg: func.QueueMessage) -> None:
    release_slow.wait(5)
    record("slow", msg.get_body())


@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
@app.queue_output(arg_name="fan", queue_name="jobs", connection="AzureWebJobsStorage")
def fan_out(timer: func.TimerRequest, fan: func.Out[list[str]]) -> None:
    fan.set([json.dumps({"id": f"t{i}"}) for i in range(3)])


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHost]:
    root = tmp_path_factory.mktemp("app")
    (root / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": {"maxDequeueCount": 3}}}))
    with LocalHost(app, keys=KEYS, app_root=root, retry_delay=0.01) as running:
        yield running


@pytest.fixture(autouse=True)
def clean() -> None:
    with seen_lock:
        seen.clear()
    release_slow.clear()


def get(host: LocalHost, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(host.url + path, timeout=5, **kwargs)


def raw(host: LocalHost, request: bytes) -> bytes:
    """Send bytes as they are (for what `requests` will not send) and read the answer until the server closes."""
    with connect(host) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                head, _, body = answer.partition(b"\r\n\r\n")
                length = [int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
                if length and len(body) >= length[0]:
                    break
        return answer


# -- indexing ---------------------------------------------------------------------------------------------------------


def test_the_app_is_indexed_like_the_worker_does(host: LocalHost) -> None:
    assert RouteInfo("items", ("GET", "POST"), "/api/items/{item_id}/{detail?}", "FUNCTION") in host.routes
    assert RouteInfo("admin_thing", None, "/api/admin/thing", "ADMIN") in host.routes
    assert host.queue_triggers == {"jobs": "work", "jobs-poison": "poisoned", "slow": "slow"}
    assert host.timers == ["fan_out"]
    assert host.max_dequeue_count == 3  # from the app root's host.json
    line = host.describe()
    assert "GET,POST /api/items/{item_id}/{detail?} (function)" in line and "GET /api/open (anonymous)" in line
    assert "no key configured (401): unkeyed" in line
    assert ITEMS_KEY not in line and OTHER_KEY not in line


def test_indexing_twice_works_although_get_functions_is_not_idempotent(tmp_path: Path) -> None:
    LocalHost(app, keys=KEYS, app_root=tmp_path).close()
    with pytest.raises(ValueError, match="unique function name"):  # the library's gotcha, still there
        app.get_functions()
    second = LocalHost(app, keys=KEYS, app_root=tmp_path)  # no host.json here: the defaults
    try:
        assert second.max_dequeue_count == 5
        assert second.route_prefix == "api"
        assert {r.function_name for r in second.routes} >= {"items", "other", "open_route"}
    finally:
        second.close()


def test_the_route_prefix_comes_from_host_json(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"http": {"routePrefix": "v1"}}}))
    with LocalHost(app, keys=KEYS, app_root=tmp_path) as prefixed:
        assert get(prefixed, "/v1/open").text == "plain text"
        assert get(prefixed, "/api/open").status_code == 404


# -- routing, parameters, responses -------------------------------------------------------------------------------


def test_route_and_query_parameters_headers_and_context_reach_the_function(host: LocalHost) -> None:
    response = get(
        host,
        "/api/items/42/full?x=1&y=two%20words",
        headers={"x-functions-key": ITEMS_KEY, "x-custom": "hello"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["method"] == "GET"
    assert body["route_params"] == {"item_id": "42", "detail": "full"}
    assert body["params"] == {"x": "1", "y": "two words"}
    assert body["header"] == "hello"
    assert body["function"] == "items" and body["invocation_id"]


def test_an_optional_route_parameter_may_be_absent_and_a_post_body_arrives(host: LocalHost) -> None:
    response = requests.post(host.url + "/api/items/7", data=b"payload", params={"code": ITEMS_KEY}, timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["route_params"] == {"item_id": "7"}
    assert body["method"] == "POST" and body["body"] == "payload"


def test_a_str_return_is_a_200_text_body(host: LocalHost) -> None:
    response = get(host, "/api/open")
    assert response.status_code == 200
    assert response.text == "plain text"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_unknown_routes_answer_404_in_json(host: LocalHost) -> None:
    for path in ("/api/nothing-here", "/open", "/api/items", "/api/items/1/2/3"):
        response = get(host, path, headers={"x-functions-key": ITEMS_KEY})
        assert response.status_code == 404, path
        assert "error" in response.json()


def test_a_method_the_route_does_not_allow_answers_405(host: LocalHost) -> None:
    response = requests.delete(host.url + "/api/open", timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert "error" in response.json()


def test_an_exception_answers_500_with_a_generic_error_and_the_traceback_only_in_the_log(
    host: LocalHost, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="abm.localhost"):
        response = get(host, "/api/boom")
    assert response.status_code == 500
    assert set(response.json()) == {"error"}
    assert "4711" not in response.text and "Traceback" not in response.text
    failures = [r for r in caplog.records if r.exc_info and "4711" in str(r.exc_info[1])]
    assert failures and failures[0].getMessage() == "boom failed"


# -- keys -------------------------------------------------------------------------------------------------------------


def test_the_function_key_opens_its_route_by_header_or_by_code(host: LocalHost) -> None:
    assert get(host, "/api/items/1", headers={"x-functions-key": ITEMS_KEY}).status_code == 200
    assert get(host, "/api/items/1", params={"code": ITEMS_KEY}).status_code == 200


def test_a_missing_or_wrong_key_answers_401_without_echoing_the_key(host: LocalHost) -> None:
    missing = get(host, "/api/items/1")
    wrong = get(host, "/api/items/1", params={"code": "guess-" + ITEMS_KEY})
    wrong_header = get(host, "/api/items/1", headers={"x-functions-key": "not-it"})
    for response in (missing, wrong, wrong_header):
        assert response.status_code == 401
        assert set(response.json()) == {"error"}
        assert ITEMS_KEY not in response.text and "not-it" not in response.text


def test_the_header_is_read_before_the_code_parameter(host: LocalHost) -> None:
    response = get(host, "/api/items/1", headers={"x-functions-key": "wrong"}, params={"code": ITEMS_KEY})
    assert response.status_code == 401


def test_the_key_of_one_function_does_not_open_another(host: LocalHost) -> None:
    assert get(host, "/api/other", headers={"x-functions-key": OTHER_KEY}).status_code == 200
    assert get(host, "/api/other", headers={"x-functions-key": ITEMS_KEY}).status_code == 401
    assert get(host, "/api/items/1", headers={"x-functions-key": OTHER_KEY}).status_code == 401
    assert get(host, "/api/items/1", params={"code": OTHER_KEY}).status_code == 401


def test_a_function_level_route_without_a_configured_key_answers_401_to_everyone(host: LocalHost) -> None:
    for key in ("", ITEMS_KEY, OTHER_KEY, "admin-key"):
        assert get(host, "/api/unkeyed", headers={"x-functions-key": key}).status_code == 401


def test_admin_level_routes_answer_403_even_with_a_key(host: LocalHost) -> None:
    response = get(host, "/api/admin/thing", headers={"x-functions-key": "admin-key"})
    assert response.status_code == 403
    assert "error" in response.json()


def test_keys_are_compared_in_constant_time(host: LocalHost, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module abm_command.localhost calls through
    assert get(host, "/api/other", params={"code": "x" + OTHER_KEY}).status_code == 401
    assert get(host, "/api/other", params={"code": OTHER_KEY}).status_code == 200
    assert calls == [(b"x" + OTHER_KEY.encode(), OTHER_KEY.encode()), (OTHER_KEY.encode(), OTHER_KEY.encode())]


def test_a_non_ascii_key_is_refused_not_a_crash(host: LocalHost) -> None:
    assert get(host, "/api/other", params={"code": "clé"}).status_code == 401


def test_the_log_has_method_route_status_and_duration_never_the_query_or_key(
    host: LocalHost, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="abm.localhost"):
        get(host, "/api/items/5", params={"code": ITEMS_KEY, "q": "visible-only-in-query"})
        requests.post(host.url + "/api/items/5", data=b"body-text", params={"code": ITEMS_KEY}, timeout=5)
        # the server logs a request once it has answered it, on its own thread: wait for the last line, briefly
        deadline = time.monotonic() + 5
        while not any(r.getMessage().startswith("POST /api/items/5") for r in caplog.records):
            assert time.monotonic() < deadline, "the POST was never logged"
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("GET /api/items/5 -> 200 (") and line.endswith(" ms)") for line in lines)
    assert any(line.startswith("POST /api/items/5 -> 200 (") for line in lines)
    assert (
        ITEMS_KEY not in caplog.text and "visible-only-in-query" not in caplog.text and "body-text" not in caplog.text
    )


# -- request bodies ---------------------------------------------------------------------------------------------------


def test_a_body_over_100_mb_is_refused_with_413_without_being_read(host: LocalHost) -> None:
    answer = raw(
        host,
        f"POST /api/items/1?code={ITEMS_KEY} HTTP/1.1\r\nHost: x\r\nContent-Length: {100 * 1024 * 1024 + 1}\r\n\r\n"
        .encode(),
    )  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"error"' in answer


def test_a_body_of_exactly_the_limit_is_not_refused_up_front(host: LocalHost) -> None:
    answer = raw(
        host,
        f"POST /api/items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 401")  # the key check comes next, still without reading the body


def test_a_post_without_content_length_has_an_empty_body(host: LocalHost) -> None:
    answer = raw(host, f"POST /api/items/3?code={ITEMS_KEY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["body"] == ""


def test_a_chunked_body_is_reassembled(host: LocalHost) -> None:
    response = requests.post(
        host.url + "/api/items/1", data=iter([b"ab", b"cd"]), params={"code": ITEMS_KEY}, timeout=5
    )  # a generator body makes requests send Transfer-Encoding: chunked
    assert response.status_code == 200
    assert response.json()["body"] == "abcd"


def read_response(stream: io.BufferedReader) -> tuple[int, dict[str, str], bytes]:
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline().strip()) != b"":
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", "0")))


def connect(host: LocalHost) -> socket.socket:
    address = host.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((address[0], int(address[1])), timeout=5)


def test_a_refused_request_with_a_body_leaves_the_connection_usable(host: LocalHost) -> None:
    with connect(host) as conn, conn.makefile("rb") as stream:
        conn.sendall(b"POST /api/items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
        status, headers, _ = read_response(stream)
        assert status == 401 and headers.get("connection") != "close"
        conn.sendall(f"POST /api/items/1?code={ITEMS_KEY} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\ny".encode())
        status, _, body = read_response(stream)  # the same connection: the refused body was skipped, not parsed
    assert status == 200 and json.loads(body)["body"] == "y"


def test_expect_100_continue_is_answered_only_when_the_body_is_wanted(host: LocalHost) -> None:
    with connect(host) as conn, conn.makefile("rb") as stream:
        conn.sendall(b"POST /api/items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        status, headers, _ = read_response(stream)
        assert status == 401 and headers["connection"] == "close"  # refused before the client uploads anything
    with connect(host) as conn, conn.makefile("rb") as stream:
        head = f"POST /api/items/1?code={ITEMS_KEY} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue"
        conn.sendall(head.encode() + b"\r\n\r\n")
        assert stream.readline().startswith(b"HTTP/1.1 100")
        assert stream.readline() == b"\r\n"
        conn.sendall(b"hello")
        status, _, body = read_response(stream)
    assert status == 200 and json.loads(body)["body"] == "hello"


def test_a_malformed_chunked_body_answers_400(host: LocalHost) -> None:
    answer = raw(
        host,
        f"POST /api/items/1?code={ITEMS_KEY} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 400")


# -- queues -----------------------------------------------------------------------------------------------------------


def post_jobs(host: LocalHost, jobs: Any) -> requests.Response:
    return requests.post(host.url + "/api/jobs", json={"jobs": jobs}, timeout=5)


def test_an_output_list_is_delivered_in_order_and_queue_outputs_of_queue_functions_too(host: LocalHost) -> None:
    assert post_jobs(host, [json.dumps({"id": name}) for name in ("a", "b", "c")]).status_code == 202
    assert host.drain(5)
    assert seen["work"] == [("a", 1), ("b", 1), ("c", 1)]
    assert host.undelivered("done")[-3:] == [b"a", b"b", b"c"]  # work's own output; nothing listens on "done"


def test_a_failing_message_is_retried_with_growing_dequeue_counts_until_it_succeeds(host: LocalHost) -> None:
    assert post_jobs(host, json.dumps({"id": "flaky", "fail": 2})).status_code == 202
    assert host.drain(5)
    assert seen["work"] == [("flaky", 1), ("flaky", 2), ("flaky", 3)]
    assert "poison" not in seen


def test_after_max_dequeue_count_failures_the_message_goes_to_the_poison_handler_once(host: LocalHost) -> None:
    assert post_jobs(host, json.dumps({"id": "bad", "fail": 99})).status_code == 202
    assert host.drain(5)
    assert seen["work"] == [("bad", 1), ("bad", 2), ("bad", 3)]  # host.json maxDequeueCount = 3
    assert seen["poison"] == [("bad", 1)]


def test_a_failing_poison_handler_is_only_logged(host: LocalHost, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="abm.localhost"):
        assert post_jobs(host, json.dumps({"id": "worse", "fail": 99, "poison_fails": True})).status_code == 202
        assert host.drain(5)
    assert seen["poison"] == [("worse", 1)]
    assert any("poison message" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)


def test_a_value_the_queue_binding_refuses_fails_the_request_and_enqueues_nothing(host: LocalHost) -> None:
    response = post_jobs(host, [json.dumps({"id": "ok"}), {"not": "a string"}])
    assert response.status_code == 500
    assert host.drain(5)
    assert "work" not in seen


def test_enqueue_and_drain_wait_for_a_running_delivery(host: LocalHost) -> None:
    host.enqueue("slow", "first")
    assert host.drain(0.1) is False  # the handler is still waiting
    release_slow.set()
    assert host.drain(5) is True
    assert seen["slow"] == [b"first"]


def test_enqueue_refuses_a_message_over_the_storage_queue_limit(host: LocalHost) -> None:
    with pytest.raises(ValueError, match="64 KiB"):
        host.enqueue("jobs", b"x" * 60_000)  # 80,000 bytes once base64-encoded


def test_a_timer_function_run_on_demand_fans_out_through_its_queue_output(host: LocalHost) -> None:
    host.run_timer("fan_out")
    assert host.drain(5)
    assert seen["work"] == [("t0", 1), ("t1", 1), ("t2", 1)]


def test_queue_names_resolve_app_settings_and_async_functions_run(tmp_path: Path) -> None:
    small = func.FunctionApp()
    got: list[bytes] = []

    @small.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
    def listen(msg: func.QueueMessage) -> None:
        got.append(msg.get_body())

    @small.route(route="later", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    async def later(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("awaited", status_code=201)

    with LocalHost(small, app_root=tmp_path, settings={"WORK_QUEUE": "work-items"}) as served:
        assert served.queue_triggers == {"work-items": "listen"}
        served.enqueue("work-items", "m")
        assert served.drain(5)
        response = get(served, "/api/later")
    assert got == [b"m"]
    assert (response.status_code, response.text) == (201, "awaited")


# -- the real app and the CLI entry -------------------------------------------------------------------------------


def test_the_real_function_app_is_indexed_and_its_health_route_served(monkeypatch: pytest.MonkeyPatch) -> None:
    import function_app  # noqa: PLC0415 (imported here so that only this test depends on the app's modules)
    from abm import bootstrap  # noqa: PLC0415

    monkeypatch.delenv("DATAVERSE_URL", raising=False)  # no Dataverse here: health answers 503, quickly
    bootstrap.reset()
    try:
        with LocalHost(function_app.app, keys={"health": "health-key"}, app_root=ROOT) as real:
            (health,) = [route for route in real.routes if route.path == "/api/health"]
            assert health.methods == ("GET",)
            if health.auth_level == "FUNCTION":  # whichever level the app gives it, the host must enforce it
                assert get(real, "/api/health").status_code == 401
            response = get(real, "/api/health", headers={"x-functions-key": "health-key"})
    finally:
        bootstrap.reset()
    assert response.status_code in (200, 503)
    assert isinstance(response.json(), dict)


def test_run_local_host_prints_one_line_with_routes_and_auth_levels_but_no_key(tmp_path: Path) -> None:
    stream, stop = io.StringIO(), threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run_local_host(app, keys=KEYS, port=0, app_root=tmp_path, stream=stream, stop=stop)
        )
    )
    thread.start()
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    line = stream.getvalue()
    url = line.split("listening on ", 1)[1].split(" ", 1)[0]
    assert requests.get(url + "/api/open", timeout=5).text == "plain text"
    stop.set()
    thread.join(5)
    assert result == [0]
    assert line.count("\n") == 1 and line.startswith("abm serve: listening on http://127.0.0.1:")
    assert "GET /api/other (function)" in line and "ANY /api/admin/thing (admin)" in line
    assert all(key not in line for key in KEYS.values())


def test_run_local_host_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stream = io.StringIO()
        assert run_local_host(app, port=taken.getsockname()[1], app_root=tmp_path, stream=stream) == 1
    assert "cannot listen on 127.0.0.1:" in stream.getvalue()
