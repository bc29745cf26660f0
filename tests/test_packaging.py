"""The project's promises about itself: quick start, CI, settings example, pins, host.json, deployment."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from abm.settings import HOST_SETTINGS, SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "Quick start has no ```sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_has_exactly_two_commands() -> None:
    assert len(quick_start()) == 2


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci == [quick_start()[1]]


def test_the_settings_example_lists_every_setting_the_app_reads_and_no_other() -> None:
    example = json.loads((ROOT / "local.settings.example.json").read_text())
    assert example["IsEncrypted"] is False
    assert set(example["Values"]) == {s.name for s in SETTINGS} | set(HOST_SETTINGS)
    assert example["Values"]["FUNCTIONS_WORKER_RUNTIME"] == "python"


def test_the_settings_example_carries_no_secret_values() -> None:
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    local_only = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}  # Azurite's well-known development account
    assert all(values[s.name] == local_only.get(s.name, "") for s in SETTINGS if s.secret)


def requirement_pins(file: str = "requirements.txt") -> dict[str, str]:
    pins = {}
    for raw in (ROOT / file).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_every_runtime_dependency_is_pinned_for_deployment_and_installed_at_that_pin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = requirement_pins()
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0].lower()
        assert name in pins, f"{name} is not pinned in requirements.txt"
        assert metadata.version(name) == pins[name], f"{name}: installed {metadata.version(name)}, pinned {pins[name]}"


def test_every_installed_package_is_pinned_once_for_runtime_or_development_and_installed_at_its_pin() -> None:
    runtime, dev = requirement_pins(), requirement_pins("requirements-dev.txt")
    assert not set(runtime) & set(dev), "a package is pinned both for the runtime and for development"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["optional-dependencies"]["dev"]:
        name = re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower()
        assert name in dev, f"the dev tool {name} is not pinned in requirements-dev.txt"
    installed = {
        (dist.metadata["Name"] or "").lower().replace("_", "-"): dist.version
        for dist in metadata.distributions()
        if dist.metadata["Name"] not in ("abm-dataverse", "pip", "setuptools", "wheel")
    }
    pins = {name.replace("_", "-"): version for name, version in (runtime | dev).items()}
    assert installed == pins


def test_azurite_is_installed_from_a_lock_whose_node_requirement_ci_meets() -> None:
    package = json.loads((ROOT / "scripts" / "azurite" / "package.json").read_text())
    lock = json.loads((ROOT / "scripts" / "azurite" / "package-lock.json").read_text())
    pinned = package["dependencies"]["azurite"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "azurite is pinned to one exact version"
    entry = lock["packages"]["node_modules/azurite"]
    assert entry["version"] == pinned and entry["integrity"].startswith("sha512-")
    assert entry.get("engines", {}).get("node") in (None, ">=10.0.0"), "the CI machine runs Node 20"
    assert "npm ci --prefix .tools" in (ROOT / "scripts" / "test.sh").read_text()


def test_python_versions_match_what_azure_functions_1x_serves() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.13"
    assert project["scripts"]["abm"] == "abm_command.main:main"


def test_host_json_declares_version_bundle_timeout_and_logging() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    hours, minutes, seconds = map(int, host["functionTimeout"].split(":"))
    assert 0 < hours * 3600 + minutes * 60 + seconds <= 600  # within the Consumption plan's maximum
    assert "logLevel" in host["logging"]


def funcignored() -> set[str]:
    return {line.strip() for line in (ROOT / ".funcignore").read_text().splitlines() if line.strip()}


def test_funcignore_keeps_tests_and_local_settings_out_but_ships_the_entry_file() -> None:
    ignored = funcignored()
    assert {"tests", "local.settings.json", ".venv", "devtools", "abm_command", "*.sqlite", ".hypothesis"} <= ignored
    assert "function_app.py" not in ignored and "function_app" not in ignored
    deployed = {"dataverse", "statestore", "abm", "journeys", "scoring", "insights", "definitions", "schemas"}
    assert not deployed & ignored


def test_the_deployed_files_import_the_function_app_without_the_command_line_or_the_dev_tools(tmp_path: Path) -> None:
    ignored = funcignored()
    for path in ROOT.iterdir():
        if not any(fnmatch.fnmatch(path.name, pattern.rstrip("/")) for pattern in ignored):
            copy = shutil.copytree if path.is_dir() else shutil.copy
            copy(path, tmp_path / path.name)
    probe = (
        "import sys, function_app; from function_app import app; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'abm_command', 'devtools', 'tests', 'function_app'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['function_app']"
    assert not (tmp_path / "abm_command").exists() and not (tmp_path / "devtools").exists()
