"""Function keys, checked the way the Functions host checks them in Azure (which `func start` does not): the
`x-functions-key` header first, else the `code` query parameter, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from abm_command.localhost.routes import Route

__all__ = ["KEY_HEADER", "authorize"]

KEY_HEADER = "x-functions-key"


def authorize(route: Route, presented: str | None, keys: Mapping[str, str]) -> tuple[int, str] | None:
    """None if the request may call the function, else (status, error) as the Functions host answers. `keys` maps
    function name -> function key."""
    level = route.info.auth_level
    if level == "ANONYMOUS":
        return None
    if level != "FUNCTION":
        return 403, f"{level.lower()}-level functions are not served by the local host"
    expected = keys.get(route.function.name)
    if expected is None:
        return 401, f"no function key is configured for {route.function.name} on this host"
    if not presented:
        return 401, f"a function key is required: send it in the {KEY_HEADER} header or the code query parameter"
    # bytes, not str: compare_digest refuses non-ASCII str, and a key is whatever the caller configured
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        return 401, "the function key is not valid for this function"
    return None
