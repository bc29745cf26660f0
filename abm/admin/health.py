"""The health check: are the settings sane, does Dataverse accept us, is the product's schema there and usable?

Checks, each reported as ok or as the problem (never a secret: no key, token or connection string):

- `settings`: the app settings parse and those needed to reach Dataverse are set (the local host's function keys
  are not needed in Azure, so they are not required);
- `dataverse`: WhoAmI answers, which proves URL, token and the application user;
- `product_tables` (deep): `abm_interaction` and `abm_leadscore` exist and the score table's alternate key
  (abm_leadid, abm_model) is Active, so upserts by key work;
- `change_tracking` (deep): the tables the sync reads through change tracking have it on;
- any extra named checks the caller passes (the state store's, for one): a check that raises has failed.

The deep checks cost one metadata GET per table (six). `abm whoami` runs only WhoAmI.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from abm import __version__
from abm.admin.product_schema import CHANGE_TRACKED, PRODUCT_TABLES
from abm.settings import SETTINGS, Settings, SettingsError
from dataverse.client import DataverseClient
from dataverse.errors import DataverseError
from dataverse.metadata import MetadataClient, TableInfo

__all__ = ["CheckResult", "HealthReport", "anonymous", "check_health", "redact", "secret_values"]


@dataclass(frozen=True)
class CheckResult:
    """One check: ok, or the problem in words (and, for a Dataverse error, its status, code and request ids)."""

    ok: bool
    problem: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **({"problem": self.problem} if self.problem else {}), **self.details}


@dataclass(frozen=True)
class HealthReport:
    """`ok` when every check passed. `details` keeps what `abm whoami` prints (the application user's ids, or the
    problem); `checks` has one entry per check."""

    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, CheckResult] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        body = {"status": "ok" if self.ok else "unavailable", "version": __version__, **self.details}
        if self.checks:
            body["checks"] = {name: check.as_dict() for name, check in self.checks.items()}
        return body

    def public_dict(self, secrets: Sequence[str] = ()) -> dict[str, Any]:
        """What an anonymous caller may see: the status and the checks, not the org URL or the user's ids. The
        `secrets` are redacted first; then, as error texts from Dataverse or Entra ID can quote ids (the application
        user's, the tenant's, the client's) and addresses, every GUID, URL and host name in them is masked."""
        checks = {name: check.as_dict() for name, check in self.checks.items()}
        return {
            "status": "ok" if self.ok else "unavailable",
            "version": __version__,
            "checks": anonymous(redact(checks, secrets)),
        }


_TRACE_IDS = frozenset({"request_id", "client_request_id"})
_GUID = re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_HOST = re.compile(r"\b(?:[a-zA-Z0-9-]+\.)+(?:com|net|org|io|de|us|cn|microsoft|windows|azure)\b", re.IGNORECASE)


def anonymous(value: Any) -> Any:
    """`value` (JSON-like) with GUIDs, URLs and host names in its strings replaced by `<id>`, `<url>`, `<host>`;
    request ids stay, being what support quotes to Microsoft and meaning nothing to anyone else."""
    return _strings(value, lambda text: _HOST.sub("<host>", _URL.sub("<url>", _GUID.sub("<id>", text))), _TRACE_IDS)


def _error(exc: DataverseError) -> dict[str, Any]:
    error = {"type": type(exc).__name__, "status": exc.status, "code": exc.code, "message": exc.message}
    return error | {"request_id": exc.request_id, "client_request_id": exc.client_request_id}


def _failed(exc: DataverseError, what: str) -> CheckResult:
    return CheckResult(False, f"{what}: {exc.message}", {"error": _error(exc)})


def _product_tables(meta: MetadataClient) -> tuple[CheckResult, dict[str, TableInfo | None]]:
    """The product's tables exist and the score table's key is Active; returns what it read, for change tracking."""
    found: dict[str, TableInfo | None] = {}
    problems = []
    for product in PRODUCT_TABLES:
        info = meta.table(product.logical_name, keys=bool(product.keys))
        found[product.logical_name] = info
        if info is None:
            problems.append(f"table {product.logical_name} does not exist (run abm provision)")
            continue
        for key in product.keys:
            existing = info.key_with(key.columns)
            columns = ", ".join(key.columns)
            if existing is None:
                problems.append(f"{product.logical_name} has no alternate key ({columns}) (run abm provision)")
            elif not existing.active:
                problems.append(f"{product.logical_name} alternate key ({columns}) is {existing.status}, not Active")
    if problems:
        return CheckResult(False, "; ".join(problems)), found
    return CheckResult(True), found


def _change_tracking(meta: MetadataClient, known: Mapping[str, TableInfo | None]) -> CheckResult:
    off = []
    for name in CHANGE_TRACKED:
        info = known[name] if name in known else meta.table(name)
        if info is None or not info.change_tracking:
            off.append(name)
    if off:
        return CheckResult(
            False,
            f"change tracking is off for {', '.join(off)}: turn on 'Track changes' in the table's properties "
            "(Power Apps > Tables > Properties > Advanced options)",
            {"tables": off},
        )
    return CheckResult(True)


def _run_extra(check: Callable[[], None]) -> CheckResult:
    try:
        check()
    except DataverseError as exc:
        return _failed(exc, "Dataverse")
    except Exception as exc:  # a failed check, whatever it raised; only its type and message are shown
        return CheckResult(False, f"{type(exc).__name__}: {exc}")
    return CheckResult(True)


def check_health(
    client_factory: Callable[[], DataverseClient],
    *,
    deep: bool = False,
    settings_factory: Callable[[], Settings] | None = None,
    extra_checks: Mapping[str, Callable[[], None]] | None = None,
) -> HealthReport:
    """Run the checks. Without options: build the client and call WhoAmI (one request), as `abm whoami` does.

    `deep` adds the product-table and change-tracking checks (metadata reads); `settings_factory` (usually
    `Settings.from_env`) adds the settings check, run first; `extra_checks` are run last, by name. A Dataverse check
    that cannot run because an earlier one failed is reported as failed with the reason.
    """
    checks: dict[str, CheckResult] = {}
    details: dict[str, Any] = {}
    if settings_factory is not None:
        try:
            settings_factory().require_dataverse()
            checks["settings"] = CheckResult(True)
        except SettingsError as exc:
            checks["settings"] = CheckResult(False, str(exc))
    client: DataverseClient | None = None
    try:
        client = client_factory()
        who = client.who_am_i()
    except SettingsError as exc:
        details = {"problem": "settings", "message": str(exc)}
        checks["dataverse"] = CheckResult(False, f"not checked: {exc}")
        client = None
    except DataverseError as exc:
        details = {"problem": "dataverse", "error": _error(exc)}
        checks["dataverse"] = _failed(exc, "WhoAmI failed")
        client = None
    else:
        details = {
            "dataverse": {
                "url": client.transport.config.org_url,
                "user_id": str(who.user_id),
                "business_unit_id": str(who.business_unit_id),
                "organization_id": str(who.organization_id),
            }
        }
        checks["dataverse"] = CheckResult(True)
    if deep:
        if client is None:
            skipped = CheckResult(False, "not checked: Dataverse is not reachable")
            checks["product_tables"] = checks["change_tracking"] = skipped
        else:
            meta = MetadataClient(client)
            try:
                checks["product_tables"], known = _product_tables(meta)
            except DataverseError as exc:
                checks["product_tables"], known = _failed(exc, "reading the table definitions failed"), {}
            try:
                checks["change_tracking"] = _change_tracking(meta, known)
            except DataverseError as exc:
                checks["change_tracking"] = _failed(exc, "reading the table definitions failed")
    for name, check in (extra_checks or {}).items():
        checks[name] = _run_extra(check)
    return HealthReport(all(c.ok for c in checks.values()), details, checks)


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The values of the secret settings in `env` (and the keys inside a storage connection string), longest first:
    what `redact` removes from an answer, whatever a failing check put in its message."""
    values = []
    for setting in SETTINGS:
        value = env.get(setting.name, "").strip()
        if setting.secret and value:
            values.append(value)
            for part in value.split(";"):
                name, sep, inner = part.partition("=")
                if sep and name.strip().lower() in ("accountkey", "sharedaccesssignature") and inner:
                    values.append(inner.strip())
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def redact(value: Any, secrets: Sequence[str]) -> Any:
    """`value` (JSON-like) with every occurrence of a secret in its strings replaced by `***`."""

    def hide(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return _strings(value, hide)


def _strings(value: Any, change: Callable[[str], str], keep: Collection[str] = ()) -> Any:
    """`value` (JSON-like) with `change` applied to every string in it, except the values of the keys in `keep`."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {k: v if k in keep else _strings(v, change, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strings(v, change, keep) for v in value]
    return value
