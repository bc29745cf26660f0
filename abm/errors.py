"""The service's own errors: one root, `ServiceError`, and the kinds beneath it.

A service error says what went wrong in words a caller can act on (never a secret, never a row's values) and carries
no HTTP status or exit code: each entry point maps the kinds to its own answers, once, in a table
(`function_app/errors.py` for HTTP, `abm_command/errors.py` for the command line). The service's modules subclass
a kind for their own errors (`SettingsError` is a `NotConfigured`, `InsightsInputError` an `InvalidInput`, ...).

Dataverse's failures keep their own root, `dataverse.errors.DataverseError`, raised by the adapter; `UpstreamError`
names it for the entry points, which must not import the adapter.

>>> issubclass(TooLarge, InvalidInput) and not issubclass(NotFound, InvalidInput)
True
"""

from __future__ import annotations

from dataverse.errors import DataverseError

__all__ = [
    "MAX_BODY_BYTES",
    "InvalidInput",
    "NotConfigured",
    "NotFound",
    "Refused",
    "ServiceError",
    "TooLarge",
    "UpstreamError",
    "check_body_size",
]

MAX_BODY_BYTES = 1024 * 1024  # the largest request body the service reads: webhook deliveries, interactions, replays

UpstreamError = DataverseError  # Dataverse failed (refused, unreachable, throttled past the retries), not the caller


class ServiceError(Exception):
    """The root of the service's errors; the message names the problem."""


class InvalidInput(ServiceError, ValueError):
    """What the caller sent cannot be accepted: a request body, a parameter, an argument. `path` locates the problem
    inside a JSON document (`events[3].occurred_on`, `$` for the whole body) when there is one."""

    path: str | None = None


class TooLarge(InvalidInput):
    """A request body over `MAX_BODY_BYTES`."""


class NotFound(ServiceError, LookupError):
    """What the caller names does not exist: an account, a journey, a stored event."""


class NotConfigured(ServiceError, ValueError):
    """The app cannot run as configured: a missing or invalid setting, an invalid definition, or something a
    definition or setting names that the org cannot run (a journey's or the hand-off's workflow)."""


class Refused(ServiceError):
    """The org is not in a state the operation can work with (provisioning could not finish, the webhook cannot be
    registered as asked); the message says what to do."""


def check_body_size(body: bytes) -> None:
    """`TooLarge` for a request body over `MAX_BODY_BYTES`."""
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(f"the body is larger than {MAX_BODY_BYTES:,} bytes")
