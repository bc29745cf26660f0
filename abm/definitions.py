"""Loading definitions: JSON files validated against their published JSON Schema, then parsed into domain models.

Any problem stops the load before a run starts, as a `DefinitionError` naming the file, the JSON path inside it
and the reason: bad JSON (with line and column), a schema violation (jsonschema's most relevant error), or a rule
the schema cannot express (grades that leave a gap, a lookup path that cannot be followed), from the domain parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from abm.errors import NotConfigured
from journeys.model import Journey, parse_journey
from journeys.segments import Segment, parse_segment
from scoring.model import TYPED_COLUMNS, ModelError, ScoringModel, follow_path, parse_model

T = TypeVar("T")

__all__ = [
    "APP_ROOT",
    "SCHEMAS",
    "ColumnRef",
    "DefinitionError",
    "DefinitionErrors",
    "Definitions",
    "definition_files",
    "load_journeys",
    "load_scoring_models",
    "load_segments",
    "read_definitions",
    "schema_validator",
    "scoring_model_files",
]

APP_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = APP_ROOT / "schemas"


class DefinitionError(NotConfigured):
    """An invalid definition: `file`, `path` (a JSON path such as `$.grades[1].from`) and `reason`."""

    def __init__(self, file: Path, path: str, reason: str) -> None:
        super().__init__(f"{file}: {path}: {reason}")
        self.file = file
        self.path = path
        self.reason = reason


def _json_path(parts: Iterable[str | int]) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


@cache
def _ecma(pattern: str) -> re.Pattern[str]:
    """A schema pattern as JSON Schema reads it (ECMA-262): `$` ends the string; in Python's `re` it also matches
    before a final newline, which would let a name with a trailing newline through (the schemas' patterns hold no
    `$` inside a character class)."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield ValidationError(f"does not match {pattern!r}")


_Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})


def schema_validator(schema_name: str) -> Draft202012Validator:
    """The validator of one of the published schemas (`schemas/`), patterns read as JSON Schema reads them."""
    schema = json.loads((SCHEMAS / schema_name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return cast(Draft202012Validator, _Validator(schema))


def _read(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(file, "$", f"cannot read the file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            file, "$", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None


class _Named(Protocol):
    name: str


def _schema_problems(file: Path, validator: Draft202012Validator, document: Any) -> list[DefinitionError]:
    """Every place a document breaks its schema, once each (of the alternatives at one place, the most relevant)."""
    found: dict[str, DefinitionError] = {}
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        best = best_match([error]) or error  # into the alternatives, as deep as jsonschema judges relevant
        path = _json_path(best.absolute_path)
        found.setdefault(path, DefinitionError(file, path, best.message))
    return list(found.values())


def _collect(
    files: Sequence[Path],
    schema: str,
    parse: Callable[[Any], T],
    what: str,
    *,
    problems: list[DefinitionError],
    declared: set[str] | None = None,
) -> list[tuple[Path, Any, T]]:
    """Each file validated against `schema` and parsed, with its document; every problem (a file that cannot be
    read or parsed, each schema violation, a name another file uses) is appended to `problems`, and the name each
    readable file declares, valid or not, to `declared` (what a reference to it is checked against)."""
    validator = schema_validator(schema)
    parsed: list[tuple[Path, Any, T]] = []
    seen: dict[str, Path] = {}
    for file in sorted(files):
        try:
            document = _read(file)
        except DefinitionError as exc:
            problems.append(exc)
            continue
        if declared is not None and isinstance(document, dict) and isinstance(document.get("name"), str):
            declared.add(document["name"])
        broken = _schema_problems(file, validator, document)
        if broken:
            problems += broken
            continue
        try:
            item = parse(document)
        except ModelError as exc:  # scoring, segment and journey errors alike
            problems.append(DefinitionError(file, exc.path, exc.reason))
            continue
        name = cast(_Named, item).name
        if name in seen:
            problems.append(DefinitionError(file, "$.name", f"{what} name {name!r} is also used by {seen[name]}"))
            continue
        seen[name] = file
        parsed.append((file, document, item))
    return parsed


def _load(files: Sequence[Path], schema: str, parse: Callable[[Any], T], what: str) -> list[T]:
    """Every definition in `files`, or the first problem raised (`read_definitions` gives them all)."""
    problems: list[DefinitionError] = []
    parsed = _collect(files, schema, parse, what, problems=problems)
    if problems:
        raise problems[0]
    return [item for _, _, item in parsed]


def load_scoring_models(files: Sequence[Path]) -> list[ScoringModel]:
    """Every scoring model in `files`, validated; names must be unique across files."""
    return _load(files, "scoring-model.schema.json", parse_model, "model")


def load_journeys(files: Sequence[Path]) -> list[Journey]:
    """Every journey in `files`, validated (templates compiled, account options only in account-based journeys)."""
    return _load(files, "journey.schema.json", parse_journey, "journey")


def load_segments(files: Sequence[Path]) -> list[Segment]:
    """Every segment in `files`, validated; names must be unique across files."""
    return _load(files, "segment.schema.json", parse_segment, "segment")


@dataclass(frozen=True)
class ColumnRef:
    """A column a definition names: where (file, JSON path) and what (the table, and the column on it). An
    interaction `field` is kept as written (`table` "interaction"): the mapping settings say which column it is."""

    file: Path
    path: str
    table: str
    column: str


def _walk(node: Any, path: str = "$") -> Iterator[tuple[str, str, Any]]:
    """Every (JSON path, key, value) of a document, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def _columns(file: Path, kind: str, document: Any) -> list[ColumnRef]:
    """The columns a valid definition names (`attribute` paths, segment `column`s, behaviour `field`s), resolved to
    their tables; the ids and lookups every record carries are left out (they are not the definition's choice)."""
    found: list[ColumnRef] = []
    for path, key, value in _walk(document):
        if not isinstance(value, str):
            continue
        if key == "field":
            found.append(ColumnRef(file, path, "interaction", value))
        elif key == "attribute" and kind == "scoring":
            _, table, column = follow_path(value)
            found.append(ColumnRef(file, path, table, column))
        elif key == "attribute":
            table, _, column = value.partition(".")
            found.append(ColumnRef(file, path, table, column))
        elif key == "column" and kind == "segments":
            found.append(ColumnRef(file, path, path.split(".")[1], value))  # under $.contact or $.account
    return [ref for ref in found if ref.column not in TYPED_COLUMNS.get(ref.table, {})]


@dataclass(frozen=True)
class Definitions:
    """The valid definitions of a folder, and every column they name (`ColumnRef`)."""

    models: list[ScoringModel] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    journeys: list[Journey] = field(default_factory=list)
    columns: tuple[ColumnRef, ...] = ()


class DefinitionErrors(NotConfigured):
    """Every problem of a set of definitions (each a `DefinitionError`: file, JSON path, reason)."""

    def __init__(self, problems: Sequence[DefinitionError]) -> None:
        self.problems = list(problems)
        listed = "; ".join(str(p) for p in self.problems)
        super().__init__(listed if len(self.problems) == 1 else f"{len(self.problems)} problems: {listed}")


def read_definitions(definitions_dir: str | Path) -> tuple[Definitions, list[DefinitionError]]:
    """The definitions of a folder and every problem the files show: unreadable or invalid JSON, each schema
    violation, what the parsers refuse, names used twice, and references to what no file defines (a journey's
    segment). What is valid is kept, so one report lists every problem at once."""
    problems: list[DefinitionError] = []
    declared: dict[str, set[str]] = {kind: set() for kind in _KINDS}  # a broken file's name still counts as defined
    loaded = {
        kind: _collect(
            definition_files(definitions_dir, kind), schema, parse, what, problems=problems, declared=declared[kind]
        )
        for kind, (schema, parse, what) in _KINDS.items()
    }
    segment_names = declared["segments"]
    for file, _, journey in loaded["journeys"]:
        if journey.segment not in segment_names:
            known = ", ".join(sorted(segment_names)) or "none"
            problems.append(DefinitionError(file, "$.segment", f"no segment is named {journey.segment!r} ({known})"))
    columns = tuple(
        ref for kind, items in loaded.items() for file, doc, _ in items for ref in _columns(file, kind, doc)
    )
    definitions = Definitions(
        models=[item for _, _, item in loaded["scoring"]],
        segments=[item for _, _, item in loaded["segments"]],
        journeys=[item for _, _, item in loaded["journeys"]],
        columns=columns,
    )
    return definitions, problems


_KINDS: dict[str, tuple[str, Callable[[Any], Any], str]] = {
    "scoring": ("scoring-model.schema.json", parse_model, "model"),
    "segments": ("segment.schema.json", parse_segment, "segment"),
    "journeys": ("journey.schema.json", parse_journey, "journey"),
}


def definition_files(definitions_dir: str | Path, kind: str) -> list[Path]:
    """The files of one kind (`scoring`, `segments`) in a definitions folder (`<dir>/<kind>/*.json`); a relative
    folder is taken from the app root, where the Functions host runs the app."""
    folder = Path(definitions_dir)
    return sorted((folder if folder.is_absolute() else APP_ROOT / folder).joinpath(kind).glob("*.json"))


def scoring_model_files(definitions_dir: str | Path) -> list[Path]:
    """The scoring model files of a definitions folder (`<dir>/scoring/*.json`)."""
    return definition_files(definitions_dir, "scoring")
