"""What the emulator's routes hand back and read from every request: the answer type, `Prefer`, the clock."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Answer", "now_iso", "parse_prefer"]


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: a JSON body (or None), or `raw` bytes with their content type (a `$batch` response)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_prefer(header: str | None) -> dict[str, str]:
    """`Prefer: odata.maxpagesize=50,odata.include-annotations="*"` → {name: value}."""
    prefs: dict[str, str] = {}
    for part in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", header or ""):
        name, _, value = part.strip().partition("=")
        if name:
            prefs[name.strip()] = value.strip().strip('"')
    return prefs
