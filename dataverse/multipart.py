"""The multipart/mixed plumbing `$batch` bodies are made of: the boundary of a content type, the parts between its
delimiters, and each part's MIME headers. Shared by the `$batch` decoder and the recording transport of dry runs."""

from __future__ import annotations

import re

from dataverse.errors import DataverseError

__all__ = ["boundary_of", "multipart_parts", "split_headers"]

_LINE_BREAK = re.compile(r"\r?\n")


def boundary_of(content_type: str) -> str:
    """The boundary a multipart Content-Type declares (quoted or not); `DataverseError` when it is not multipart."""
    media, _, params = content_type.partition(";")
    if not media.strip().lower().startswith("multipart/"):
        raise DataverseError(f"not a multipart batch response (Content-Type {content_type[:100]!r})")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if value:
                return value
    raise DataverseError(f"multipart batch response without a boundary (Content-Type {content_type[:100]!r})")


def multipart_parts(text: str, boundary: str) -> list[tuple[dict[str, str], list[str]]]:
    """The (MIME headers, content lines) of each part between `--boundary` delimiters; preamble/epilogue dropped."""
    delimiter, close = f"--{boundary}", f"--{boundary}--"
    parts: list[list[str]] = []
    current: list[str] | None = None
    for line in _LINE_BREAK.split(text):
        stripped = line.rstrip(" \t")
        if stripped == close:
            if current is not None:
                parts.append(current)
            return [split_headers(part) for part in parts]
        if stripped == delimiter:
            if current is not None:
                parts.append(current)
            current = []
        elif current is not None:
            current.append(line)
    raise DataverseError(f"batch response ends without its closing delimiter {close!r} (truncated?)")


def split_headers(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """Header lines up to the first blank line (lower-case names, repeated ones joined), and the lines after it."""
    headers: dict[str, str] = {}
    index = 0
    if lines and lines[0].startswith("HTTP/"):
        return headers, lines  # a part without MIME headers
    while index < len(lines) and lines[index].strip():
        line = lines[index]
        index += 1
        if line[0] in " \t" and headers:  # obsolete folding: continues the previous header
            last = next(reversed(headers))
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise DataverseError(f"malformed header line in batch response: {line[:100]!r}")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return headers, lines[index + 1 :]
