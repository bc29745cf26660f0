"""The Function app as the Python worker sees it, and its functions called as the host would call them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import azure.functions as func
import pytest

from abm.errors import NotFound, Refused, TooLarge
from abm.jobs.events import EventInputError
from abm.jobs.interactions import InteractionInputError
from abm.jobs.journeys import JourneyCheckError
from abm.settings import SettingsError
from abm.views.params import InsightsInputError
from dataverse.errors import DataverseBadRequest
from function_app.responses import answers_errors, status_of

ROOT = Path(__file__).resolve().parent.parent

# The worker's own steps (azure-functions-python-worker, loader.index_function_app): check that the script file
# exists in the app root, import the module by NAME from sys.path, require exactly one FunctionRegister attribute,
# then build every function.
WORKER_INDEXING = r"""
import importlib, json, os, pathlib, re, sys
import azure.functions as func
root = sys.argv[1]
script = os.environ.get("PYTHON_SCRIPT_FILE_NAME", "function_app.py")
assert re.match(r"^[a-zA-Z0-9_][a-zA-Z0-9_\-]*\.py$", script), "invalid script file name"
assert os.path.exists(os.path.join(root, script)), "script file missing: the host would find 0 functions"
sys.path.insert(0, root)
module = importlib.import_module(pathlib.Path(script).stem)
apps = [name for name in module.__dir__() if isinstance(getattr(module, name), func.FunctionRegister)]
functions = []
for fn in getattr(module, apps[0]).get_functions() if len(apps) == 1 else []:
    binding = json.loads(fn.get_function_json())
    trigger = [b for b in binding["bindings"] if b["direction"] == "IN"][0]
    outputs = sorted(b["queueName"] for b in binding["bindings"] if b["direction"] == "OUT" and b["type"] == "queue")
    functions.append({"name": fn.get_function_name(), "type": trigger["type"], "route": trigger.get("route"),
                      "methods": trigger.get("methods"), "authLevel": trigger.get("authLevel"),
                      "queue": trigger.get("queueName"), "schedule": trigger.get("schedule"), "outputs": outputs})
print(json.dumps({"apps": apps, "file": module.__file__, "functions": functions}))
"""


@pytest.fixture(scope="module")
def indexed() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", WORKER_INDEXING, str(ROOT)], capture_output=True, text=True, cwd="/", check=True
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_the_worker_finds_exactly_one_function_app(indexed: dict[str, object]) -> None:
    assert indexed["apps"] == ["app"]


def test_the_package_shadows_the_marker_file_so_the_package_app_is_indexed(indexed: dict[str, object]) -> None:
    assert str(indexed["file"]).endswith("function_app/__init__.py")
    assert (ROOT / "function_app.py").is_file()


def function(name: str, kind: str, **fields: object) -> dict[str, object]:
    entry: dict[str, object] = {"name": name, "type": kind, "route": None, "methods": None, "authLevel": None}
    return entry | {"queue": None, "schedule": None, "outputs": []} | fields


def test_every_function_with_its_trigger_route_auth_level_and_queues(indexed: dict[str, object]) -> None:
    http = "httpTrigger"
    assert sorted(indexed["functions"], key=lambda f: f["name"]) == [  # type: ignore[arg-type, index]
        function(
            "dataverse_webhook",
            http,
            route="dataverse/webhook",
            methods=["POST"],
            authLevel="FUNCTION",
            outputs=["abm-events"],
        ),
        function("dead_letter_event", "queueTrigger", queue="abm-events-poison"),
        function("dead_letter_shard", "queueTrigger", queue="abm-shards-poison"),
        function("health", http, route="health", methods=["GET"], authLevel="ANONYMOUS"),
        function("insights_account", http, route="insights/accounts/{id}", methods=["GET"], authLevel="FUNCTION"),
        function("insights_cohorts", http, route="insights/cohorts", methods=["GET"], authLevel="FUNCTION"),
        function("insights_flows", http, route="insights/flows", methods=["GET"], authLevel="FUNCTION"),
        function("insights_journey", http, route="insights/journeys/{name}", methods=["GET"], authLevel="FUNCTION"),
        function("insights_paths", http, route="insights/paths", methods=["GET"], authLevel="FUNCTION"),
        function(
            "interactions", http, route="interactions", methods=["POST"], authLevel="FUNCTION", outputs=["abm-events"]
        ),
        function("process_event", "queueTrigger", queue="abm-events"),
        function("replay", http, route="replay", methods=["POST"], authLevel="FUNCTION"),
        function("sync", "timerTrigger", schedule="%ABM_SYNC_SCHEDULE%", outputs=["abm-shards"]),
        function("sync_shard", "queueTrigger", queue="abm-shards"),
    ]


def test_the_marker_file_holds_nothing_but_its_docstring() -> None:
    tree = ast.parse((ROOT / "function_app.py").read_text())
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr)  # a second app here would break indexing


def failing_with(error: Exception) -> func.HttpResponse:
    """What an HTTP function wrapped in `answers_errors` answers when it raises `error`."""

    @answers_errors
    def failing() -> func.HttpResponse:
        raise error

    return failing()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (TooLarge("the body is larger than 1,048,576 bytes"), 413),
        (EventInputError("the body is not valid JSON"), 400),
        (InsightsInputError("steps: unknown event type 'Nope'"), 400),
        (NotFound("no stored event or dead letter x"), 404),
        (Refused("the webhook cannot be registered"), 409),
        (SettingsError("DATAVERSE_URL is required"), 503),
        (JourneyCheckError("journey x: workflow y is not an activated on-demand workflow"), 503),
        (DataverseBadRequest("A record with Full Name 'Jane Roe' exists", status=400, code="0x80040333"), 502),
    ],
)
def test_each_error_kind_is_answered_with_the_status_of_its_kind(error: Exception, status: int) -> None:
    answer = failing_with(error)
    message = json.loads(answer.get_body())["error"]
    assert answer.status_code == status == status_of(error) and message
    assert "Jane" not in message  # a Dataverse failure is named by its kind, status and code, never its message


def test_a_bad_input_answer_names_where_the_problem_is() -> None:
    answer = failing_with(InteractionInputError("events[0].id", "is required"))
    assert json.loads(answer.get_body()) == {"error": "events[0].id: is required", "path": "events[0].id"}


def test_a_setting_missing_when_the_runtime_is_built_is_a_503_saying_so() -> None:
    answer = failing_with(SettingsError("DATAVERSE_URL is required"))
    assert json.loads(answer.get_body()) == {"error": "the app is not configured: DATAVERSE_URL is required"}


def test_anything_else_is_a_bug_left_to_the_host() -> None:
    with pytest.raises(KeyError):
        failing_with(KeyError("x"))
