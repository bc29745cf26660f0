"""Errors the emulator answers with, in Dataverse's JSON shape and with its documented codes and messages.

Sources (Microsoft Learn): "Web service error codes" (DuplicateRecord 0x80040237, DuplicateRecordEntityKey
0x80060892, StringLengthTooLong 0x80044331), "Use an alternate key to reference a record" (the invalid key message),
"Perform conditional operations using the Web API" (412 for `If-None-Match: *` on an existing row). Where Learn gives
a message but no status, the status is the one Dataverse is observed to answer (noted at each function).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "EmulatorError",
    "already_exists",
    "bad_request",
    "duplicate",
    "duplicate_key",
    "invalid_key",
    "not_found",
    "too_long",
]


class EmulatorError(Exception):
    """An HTTP error answer: status, Dataverse's hex code and message, optional extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(logical_name: str, id: str) -> EmulatorError:
    """ObjectDoesNotExist, as Dataverse words it."""
    return EmulatorError(404, "0x80040217", f"{logical_name} With Id = {id} Does Not Exist")


def bad_request(message: str, code: str = "0x80048d19") -> EmulatorError:
    """A payload or URL Dataverse cannot use (0x80048d19: "Error identified in Payload provided by the user")."""
    return EmulatorError(400, code, message)


def duplicate(message: str = "Cannot insert duplicate key.") -> EmulatorError:
    """DuplicateRecord: a row with this primary key already exists (412, as the Web API answers it)."""
    return EmulatorError(412, "0x80040237", message)


def already_exists() -> EmulatorError:
    """`If-None-Match: *` on an upsert whose row exists: 412 with the documented message and an empty code."""
    return EmulatorError(412, "", "A record with matching key values already exists.")


def duplicate_key(key_name: str, columns: Iterable[str]) -> EmulatorError:
    """DuplicateRecordEntityKey: a create would repeat an alternate key's values. Learn gives code and message, not
    the status; Dataverse answers 412 (Precondition Failed)."""
    return EmulatorError(
        412,
        "0x80060892",
        f"Entity Key {key_name} violated. A record with the same value for {', '.join(columns)} already exists. "
        "A duplicate record cannot be created. Select one or more unique values and try again.",
    )


def invalid_key(logical_name: str) -> EmulatorError:
    """A key segment whose names, number or literal types are not those of the primary key or an alternate key. The
    message is Learn's; the status and code (400, 0x80060888) are Dataverse's for an unusable URL."""
    resource = f"Microsoft.Dynamics.CRM.{logical_name}"
    return EmulatorError(
        400,
        "0x80060888",
        f"The key in the request URI is not valid for resource '{resource}'. Ensure that the names and number of key "
        f"properties match the declared or alternate key properties for the resource '{resource}'.",
    )


def too_long(logical_name: str, column: str, max_length: int) -> EmulatorError:
    """StringLengthTooLong (0x80044331): a string or memo value longer than its column's MaxLength. Learn lists the
    generic "A validation error occurred. A string value provided is too long."; Dataverse names the column."""
    return EmulatorError(
        400,
        "0x80044331",
        f"A validation error occurred. The length of the '{column}' attribute of the '{logical_name}' entity exceeded "
        f"the maximum allowed length of '{max_length}'.",
    )
