"""Definitions load only when valid: bad JSON, schema violations and semantic errors name file, path and reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from abm.definitions import (
    APP_ROOT,
    DefinitionError,
    definition_files,
    load_scoring_models,
    load_segments,
    scoring_model_files,
)

GOOD: dict[str, Any] = {
    "name": "fit",
    "version": 1,
    "status": "live",
    "target": "contact",
    "minimum_consent": 2,
    "sales_ready_score": 10,
    "grades": [{"name": "B", "from": 0, "to": 9}, {"name": "A", "from": 10}],
    "rules": [
        {
            "name": "purchaser",
            "points": 10,
            "when": [[{"attribute": "lead.parentcontactid.jobtitle", "op": "contains", "value": "purchas"}]],
        }
    ],
}


def write(tmp_path: Path, name: str, document: Any) -> Path:
    file = tmp_path / name
    file.write_text(document if isinstance(document, str) else json.dumps(document))
    return file


def test_the_shipped_demo_models_load() -> None:
    models = load_scoring_models(scoring_model_files("definitions"))
    assert {m.target for m in models} == {"contact", "account"}
    assert all(m.status == "live" for m in models)
    assert scoring_model_files("definitions")[0].is_relative_to(APP_ROOT)


def test_a_good_model_loads(tmp_path: Path) -> None:
    [model] = load_scoring_models([write(tmp_path, "fit.json", GOOD)])
    assert model.name == "fit" and model.sales_ready_score == 10


def test_bad_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    file = write(tmp_path, "broken.json", '{"name": "x",\n  "version": }')
    with pytest.raises(DefinitionError) as caught:
        load_scoring_models([file])
    assert caught.value.file == file and caught.value.path == "$"
    assert "line 2" in caught.value.reason and str(file) in str(caught.value)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"target": "household"}, "$.target"),
        ({"minimum_consent": 9}, "$.minimum_consent"),
        (
            {"rules": [{"name": "r", "points": 1.5, "when": [[{"attribute": "lead.subject", "op": "is_null"}]]}]},
            "$.rules[0].points",
        ),
        ({"surprise": True}, "$"),
        # A pattern's `$` ends the string, as JSON Schema (ECMA-262) reads it, not also before a final newline.
        ({"name": "account-fit\n"}, "$.name"),
        (
            {"rules": [{"name": "r", "points": 1, "when": [[{"attribute": "lead.subject\n", "op": "is_null"}]]}]},
            "$.rules[0].when[0][0].attribute",
        ),
    ],
)
def test_a_schema_violation_names_the_path(tmp_path: Path, change: dict[str, Any], path: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_scoring_models([write(tmp_path, "bad.json", {**GOOD, **change})])
    assert caught.value.path == path
    assert caught.value.reason


def test_grades_with_a_gap_are_refused_with_the_path(tmp_path: Path) -> None:
    grades = [{"name": "B", "from": 0, "to": 8}, {"name": "A", "from": 10}]
    with pytest.raises(DefinitionError) as caught:
        load_scoring_models([write(tmp_path, "gap.json", {**GOOD, "grades": grades})])
    assert caught.value.path.startswith("$.grades[1]")


def test_a_path_that_cannot_be_followed_is_refused(tmp_path: Path) -> None:
    rules = [
        {"name": "r", "points": 1, "when": [[{"attribute": "lead.parentcontactid.nosuchhop.name", "op": "is_null"}]]}
    ]
    with pytest.raises(DefinitionError) as caught:
        load_scoring_models([write(tmp_path, "hop.json", {**GOOD, "rules": rules})])
    assert caught.value.path == "$.rules[0].when[0][0].attribute"


def test_two_files_with_the_same_model_name_are_refused(tmp_path: Path) -> None:
    files = [write(tmp_path, "a.json", GOOD), write(tmp_path, "b.json", GOOD)]
    with pytest.raises(DefinitionError, match="also used by"):
        load_scoring_models(files)


def test_the_shipped_demo_segments_load() -> None:
    segments = load_segments(definition_files("definitions", "segments"))
    assert {s.kind for s in segments} == {"dynamic", "static"}


def test_a_segment_schema_violation_names_the_path(tmp_path: Path) -> None:
    bad = {"name": "s", "type": "dynamic", "account": {"all": [{"column": "city", "op": "like", "value": "x"}]}}
    with pytest.raises(DefinitionError) as caught:
        load_segments([write(tmp_path, "bad.json", bad)])
    assert caught.value.path.startswith("$.account")
