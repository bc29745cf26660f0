"""Dependencies point inward: the domain is pure, adapters know no Functions, entry points only the service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

DOMAIN = ("journeys", "scoring", "insights")
ENTRY_POINTS = ("function_app", "abm_command")
# What each layer must not import (top-level module names, or dotted prefixes): DESIGN.md's layer table. Every
# top-level package has an entry, so a new one must say where it stands.
FORBIDDEN = {
    **{
        pkg: {
            "requests",
            "msal",
            "azure",
            "tenacity",
            "urllib3",
            "http",
            "socket",
            "sqlite3",
            "dataverse",
            "statestore",
            "abm",
            *ENTRY_POINTS,
            "devtools",
        }
        for pkg in DOMAIN
    },
    # adapters: domain types only, never Functions, the service, the entry points or the dev tools
    "dataverse": {"azure.functions", "abm", "statestore", *ENTRY_POINTS, "devtools"},
    "statestore": {"azure.functions", "abm", "dataverse", *ENTRY_POINTS, "devtools"},
    # the service: domain and adapters, never Functions, the entry points or the dev tools
    "abm": {"azure.functions", *ENTRY_POINTS, "devtools"},
    # entry points: the service; the Function app never the dev tools or the command line; the command line (and the
    # local host behind `abm serve`, which runs the Function app) may use the dev tools for `demo` and `emulator`
    "function_app": {"dataverse", "statestore", *DOMAIN, "devtools", "abm_command"},
    "abm_command": set(DOMAIN),
    # dev tools: Dataverse's types and the service (the demo), never an entry point
    "devtools": {"azure", *ENTRY_POINTS},
}
# Concrete adapters: the service names them in its composition root (abm/bootstrap.py) only; everything else in it
# (the jobs, the views, the admin jobs, settings, definitions, dry runs) takes their ports.
CONCRETE_ADAPTERS = {
    "statestore.sqlite",
    "statestore.azure_tables",
    "statestore.overlay",
    "dataverse.transport",
    "dataverse.recording",
}
COMPOSITION_ROOT = ROOT / "abm" / "bootstrap.py"
# Calls that read the environment or the clock: the domain takes them as arguments instead.
IMPURE_ATTRIBUTES = {
    ("os", "environ"),
    ("os", "getenv"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violates(name: str, forbidden: set[str]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_layer_imports_what_it_must_not(package: str) -> None:
    assert modules(package), f"{package}/ has no modules"
    bad = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules(package)
        for name in imported(path)
        if violates(name, FORBIDDEN[package])
    }
    assert not bad


def test_only_the_composition_root_names_concrete_adapters() -> None:
    assert modules("abm/jobs") and modules("abm/views")
    bad = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules("abm")
        if path != COMPOSITION_ROOT
        for name in imported(path)
        if violates(name, CONCRETE_ADAPTERS)
    }
    assert not bad


def test_the_composition_root_is_where_the_adapters_are_named() -> None:
    assert {n for n in imported(COMPOSITION_ROOT) if violates(n, CONCRETE_ADAPTERS)} >= {
        "statestore.sqlite",
        "statestore.overlay",
        "dataverse.recording",
    }


@pytest.mark.parametrize("package", DOMAIN)
def test_the_domain_reads_neither_environment_nor_clock(package: str) -> None:
    bad = []
    for path in modules(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in IMPURE_ATTRIBUTES
            ):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert not bad


def test_every_top_level_package_has_a_place_in_the_layer_table() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(FORBIDDEN)


def test_the_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("import requests\nfrom azure.functions import HttpRequest\n")
    assert {n for n in imported(sample) if violates(n, FORBIDDEN["journeys"])} == {"requests", "azure.functions"}


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = []
    for package in ("abm", "dataverse", "function_app", "devtools", *DOMAIN):
        for path in modules(package):
            text = path.read_text()
            if "os.environ" in text or "os.getenv" in text:
                readers.append(str(path.relative_to(ROOT)))
    assert readers == ["abm/settings.py"]
