"""The app as the Python worker indexes it, and its functions called as the worker calls them.

`index` builds a `FunctionApp`'s functions once (`get_functions()` and each function's binding JSON) and reads what
each binding asks of the host; `invoke` calls one with its trigger, fresh output bindings and, when it declares
one, a `context`, and returns what it set on its queue output bindings. host.json is read here too.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import azure.functions as func

__all__ = ["Function", "HostConfigError", "InvocationContext", "index", "invoke", "read_host_json", "section"]

LOG = logging.getLogger("abm.localhost")

QueueMessages = list[tuple[str, list[bytes]]]  # (queue name, message bodies) per queue output binding


class HostConfigError(ValueError):
    """The app cannot be served as indexed: a bad route template or an unreadable host.json."""


@dataclass(frozen=True)
class InvocationContext:
    """What the worker passes to a function that declares a `context` parameter (duck-typed `func.Context`)."""

    invocation_id: str
    function_name: str
    function_directory: str
    thread_local_storage: threading.local = field(default_factory=threading.local)
    trace_context: None = None
    retry_context: None = None


@dataclass(frozen=True)
class Function:
    """One indexed function: its Python callable and what the host must pass to it."""

    name: str
    kind: str  # "http", "queue", "timer" or the trigger type of anything else
    call: Callable[..., Any]
    trigger_arg: str
    trigger: Mapping[str, Any]
    queue_outputs: Mapping[str, str]  # argument name (or "$return") -> queue name
    http_output: str = "$return"  # the argument name of the HTTP response
    wants_context: bool = False
    unsupported: tuple[str, ...] = ()


class _OutValue(func.Out[Any]):
    """The `func.Out` the worker passes for an output binding: the last `set` wins, read after the call."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


def _resolve(value: str, settings: Mapping[str, str]) -> str:
    """`%SETTING%` binding expressions, resolved from app settings as the host does."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            LOG.warning("binding expression %%%s%% names an app setting that is not set", name)
            return match.group(0)
        return settings[name]

    return re.sub(r"%([^%]+)%", setting, value)


def read_host_json(app_root: Path) -> dict[str, Any]:
    path = app_root / "host.json"
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HostConfigError(f"{path}: cannot read ({exc})") from None
    if not isinstance(document, dict):
        raise HostConfigError(f"{path}: not a JSON object")
    return document


def section(document: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        value = document.get(key)
        document = value if isinstance(value, dict) else {}
    return document


def index(app: func.FunctionApp, settings: Mapping[str, str]) -> list[Function]:
    """Build the app's functions once, as the worker does, and read what each binding asks of the host."""
    # get_functions() is not idempotent (azure-functions-python-worker#1867): it records every name in
    # functions_bindings and raises "does not have a unique function name" the second time. The dict exists only
    # for that check, so clearing it first makes indexing repeatable (another LocalHost, a test that indexed).
    app.functions_bindings = None
    functions = []
    for built in app.get_functions():
        document = json.loads(built.get_function_json())
        bindings: list[dict[str, Any]] = document.get("bindings", [])
        trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), None)
        if trigger is None:
            raise HostConfigError(f"{built.get_function_name()} has no trigger")
        call = built.get_user_function()
        kind = {"httpTrigger": "http", "queueTrigger": "queue", "timerTrigger": "timer"}.get(trigger["type"])
        unsupported = [] if kind else [f"{trigger['type']} trigger"]
        queue_outputs, http_output = {}, "$return"
        for binding in bindings:
            if binding is trigger:
                continue
            direction, kind_of = str(binding.get("direction", "")).upper(), binding.get("type")
            if kind_of == "queue" and direction == "OUT":
                queue_outputs[binding["name"]] = _resolve(binding["queueName"], settings)
            elif kind_of == "http" and direction == "OUT":
                http_output = binding["name"]
            else:
                unsupported.append(f"{kind_of} {direction.lower()} binding {binding.get('name')!r}")
        trigger = {**trigger}
        if kind == "queue":
            trigger["queueName"] = _resolve(trigger["queueName"], settings)
        functions.append(
            Function(
                name=str(built.get_function_name()),
                kind=kind or str(trigger["type"]),
                call=call,
                trigger_arg=trigger["name"],
                trigger=trigger,
                queue_outputs=queue_outputs,
                http_output=http_output,
                wants_context="context" in inspect.signature(call).parameters,
                unsupported=tuple(unsupported),
            )
        )
    return functions


def _call(function: Function, kwargs: dict[str, Any]) -> Any:
    """Call the user's function; `async def` functions run to completion on a private event loop."""
    result = function.call(**kwargs)
    if inspect.iscoroutine(result):
        return asyncio.run(cast(Coroutine[Any, Any, Any], result))
    return result


def _queue_bodies(value: Any) -> list[bytes]:
    """What the queue output binding accepts (azure.functions.queue.QueueMessageOutConverter): a str, bytes, a
    QueueMessage, or an iterable of str / QueueMessage; anything else fails the invocation, as in Azure."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.encode()]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, Iterable):
        bodies = []
        for item in value:
            if isinstance(item, str):
                bodies.append(item.encode())
            elif isinstance(item, func.QueueMessage):
                bodies.append(item.get_body())
            else:
                raise TypeError(f"the queue output binding does not accept a {type(item).__name__} inside a list")
        return bodies
    raise TypeError(f"the queue output binding does not accept a {type(value).__name__}")


def invoke(
    function: Function, trigger: Any, *, app_root: Path, checked: Callable[[str, bytes], bytes]
) -> tuple[Any, QueueMessages]:
    """Invoke with the trigger and fresh output bindings; returns (the HTTP response or return value, the queue
    messages to enqueue, each passed through `checked(queue, body)`). A failed invocation raises and enqueues
    nothing, as in Azure."""
    outs = {name: _OutValue() for name in function.queue_outputs if name != "$return"}
    kwargs: dict[str, Any] = {function.trigger_arg: trigger, **outs}
    http_out = _OutValue() if function.kind == "http" and function.http_output != "$return" else None
    if http_out is not None:
        kwargs[function.http_output] = http_out
    if function.wants_context:
        kwargs["context"] = InvocationContext(str(uuid.uuid4()), function.name, str(app_root))
    result = _call(function, kwargs)
    messages = []
    for name, queue in function.queue_outputs.items():
        value = result if name == "$return" else outs[name].get()
        messages.append((queue, [checked(queue, body) for body in _queue_bodies(value)]))
    return (http_out.get() if http_out is not None else result), messages
