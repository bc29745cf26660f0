"""Errors the emulator answers with, in Dataverse's JSON shape and with its documented codes."""

from __future__ import annotations

from typing import Any

__all__ = ["EmulatorError", "bad_request", "duplicate", "not_found"]


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
    return EmulatorError(412, "0x80040237", message)
