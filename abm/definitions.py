"""Loading definitions: JSON files validated against their published JSON Schema, then parsed into domain models.

Any problem stops the load before a run starts, as a `DefinitionError` naming the file, the JSON path inside it
and the reason: bad JSON (with line and column), a schema violation (jsonschema's most relevant error), or a rule
the schema cannot express (grades that leave a gap, a lookup path that cannot be followed), from the domain parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from abm.errors import NotConfigured
from journeys.model import Journey, parse_journey
from journeys.segments import Segment, parse_segment
from scoring.model import ModelError, ScoringModel, parse_model

T = TypeVar("T")

__all__ = [
    "APP_ROOT",
    "SCHEMAS",
    "DefinitionError",
    "definition_files",
    "load_journeys",
    "load_scoring_models",
    "load_segments",
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


def _load(files: Sequence[Path], schema: str, parse: Callable[[Any], T], what: str) -> list[T]:
    """Validate each file against `schema`, parse it, and check names are unique across files."""
    validator = schema_validator(schema)
    parsed: list[T] = []
    seen: dict[str, Path] = {}
    for file in sorted(files):
        document = _read(file)
        error = best_match(validator.iter_errors(document))
        if error is not None:
            raise DefinitionError(file, _json_path(error.absolute_path), error.message)
        try:
            item = parse(document)
        except ModelError as exc:  # scoring, segment and journey errors alike
            raise DefinitionError(file, exc.path, exc.reason) from None
        name = cast(_Named, item).name
        if name in seen:
            raise DefinitionError(file, "$.name", f"{what} name {name!r} is also used by {seen[name]}")
        seen[name] = file
        parsed.append(item)
    return parsed


def load_scoring_models(files: Sequence[Path]) -> list[ScoringModel]:
    """Every scoring model in `files`, validated; names must be unique across files."""
    return _load(files, "scoring-model.schema.json", parse_model, "model")


def load_journeys(files: Sequence[Path]) -> list[Journey]:
    """Every journey in `files`, validated (templates compiled, account options only in account-based journeys)."""
    return _load(files, "journey.schema.json", parse_journey, "journey")


def load_segments(files: Sequence[Path]) -> list[Segment]:
    """Every segment in `files`, validated; names must be unique across files."""
    return _load(files, "segment.schema.json", parse_segment, "segment")


def definition_files(definitions_dir: str | Path, kind: str) -> list[Path]:
    """The files of one kind (`scoring`, `segments`) in a definitions folder (`<dir>/<kind>/*.json`); a relative
    folder is taken from the app root, where the Functions host runs the app."""
    folder = Path(definitions_dir)
    return sorted((folder if folder.is_absolute() else APP_ROOT / folder).joinpath(kind).glob("*.json"))


def scoring_model_files(definitions_dir: str | Path) -> list[Path]:
    """The scoring model files of a definitions folder (`<dir>/scoring/*.json`)."""
    return definition_files(definitions_dir, "scoring")
