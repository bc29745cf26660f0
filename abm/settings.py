"""The one place that reads app settings (environment variables in Azure, `Values` of local.settings.json locally).

Each setting is declared once in `SETTINGS` with its name, meaning and default; `Settings.from_env` parses and
validates them all, and an invalid or missing one is a `SettingsError` naming the setting (never its value).
`local.settings.example.json` lists exactly these names; a test keeps the two in step.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from abm.errors import NotConfigured
from dataverse.auth import Secret

__all__ = [
    "AUTH_MODES",
    "SETTINGS",
    "Setting",
    "Settings",
    "SettingsError",
    "environment",
    "export",
    "function_keys",
    "load_local_settings",
]

AuthMode = Literal["client_secret", "certificate", "managed_identity", "static_token", "none"]
AUTH_MODES: tuple[AuthMode, ...] = ("client_secret", "certificate", "managed_identity", "static_token", "none")

# Read by the Functions host, not by our code; listed in the example file all the same.
HOST_SETTINGS = ("FUNCTIONS_WORKER_RUNTIME",)


class SettingsError(NotConfigured):
    """A missing or invalid app setting; the message names the setting and what is expected."""


def _text(value: str, setting: Setting) -> str:
    return value.strip()


def _secret(value: str, setting: Setting) -> Secret | None:
    return Secret(value) if value else None


def _number(low: float, high: float, *, integer: bool) -> Callable[[str, Setting], float | int]:
    def parse(value: str, setting: Setting) -> float | int:
        try:
            number = int(value) if integer else float(value)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise SettingsError(f"{setting.name} must be {kind}") from None
        if not low <= number <= high:
            raise SettingsError(f"{setting.name} must be between {low:g} and {high:g}")
        return number

    return parse


def _consent_levels(value: str, setting: Setting) -> dict[int, int]:
    """`587030000=0,587030001=1,...`: option value of the consent column → consent level 0 to 5."""
    levels: dict[int, int] = {}
    for pair in value.split(","):
        option, sep, level = pair.strip().partition("=")
        try:
            number, rank = int(option), int(level)
        except ValueError:
            rank = -1
        if not sep or not 0 <= rank <= 5:
            raise SettingsError(f"{setting.name} must be OPTION=LEVEL pairs with levels 0 to 5, e.g. 587030003=3")
        levels[number] = rank
    return levels


def _choice(*allowed: str) -> Callable[[str, Setting], str]:
    def parse(value: str, setting: Setting) -> str:
        if value not in allowed:
            raise SettingsError(f"{setting.name} must be one of {', '.join(allowed)}")
        return value

    return parse


def _schedule(value: str, setting: Setting) -> str:
    """A six-field NCRONTAB expression (second minute hour day month day-of-week), as the timer trigger reads it."""
    fields = value.split()
    if len(fields) != 6 or not all(re.fullmatch(r"[0-9*/,\-A-Za-z]+", f) for f in fields):
        raise SettingsError(f"{setting.name} must be six NCRONTAB fields, e.g. 0 */15 * * * * (every 15 minutes)")
    return " ".join(fields)


def _guid_or_empty(value: str, setting: Setting) -> str:
    if value and not re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", value):
        raise SettingsError(f"{setting.name} must be a GUID (or empty)")
    return value.lower()


def _prefix(value: str, setting: Setting) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", value):
        raise SettingsError(f"{setting.name} must be 1 to 16 lower-case letters and digits, starting with a letter")
    return value


def _auth(value: str, setting: Setting) -> AuthMode:
    for mode in AUTH_MODES:
        if value == mode:
            return mode
    raise SettingsError(f"{setting.name} must be one of {', '.join(AUTH_MODES)}")


def _url(value: str, setting: Setting) -> str:
    url = value.strip().rstrip("/")
    for suffix in ("/api/data/v9.2", "/api/data/v9.1", "/api/data/v9.0"):
        url = url.removesuffix(suffix)
    if url and not url.startswith(("https://", "http://")):
        raise SettingsError(f"{setting.name} must be an https:// URL such as https://contoso.crm.dynamics.com")
    return url


@dataclass(frozen=True)
class Setting:
    """One app setting: environment name, field on `Settings`, default (as text), meaning, parser, secrecy."""

    name: str
    field: str
    default: str
    help: str
    parse: Callable[[str, Setting], Any] = _text
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("DATAVERSE_URL", "dataverse_url", "", "Environment URL, e.g. https://contoso.crm4.dynamics.com", _url),
    Setting(
        "DATAVERSE_AUTH",
        "auth",
        "client_secret",
        "client_secret | certificate | managed_identity | static_token | none (the last two for the local emulator)",
        _auth,
    ),
    Setting("DATAVERSE_TENANT_ID", "tenant_id", "", "Entra ID tenant (directory) id of the app registration"),
    Setting("DATAVERSE_CLIENT_ID", "client_id", "", "Application (client) id of the app registration"),
    Setting(
        "DATAVERSE_CLIENT_SECRET",
        "client_secret",
        "",
        "Client secret (auth client_secret); use a Key Vault reference in Azure",
        _secret,
        secret=True,
    ),
    Setting(
        "DATAVERSE_CERTIFICATE_PATH", "certificate_path", "", "PEM (key + certificate) or PFX file (auth certificate)"
    ),
    Setting(
        "DATAVERSE_CERTIFICATE_PASSWORD",
        "certificate_password",
        "",
        "Passphrase of the certificate's private key, if any",
        _secret,
        secret=True,
    ),
    Setting(
        "DATAVERSE_MANAGED_IDENTITY_CLIENT_ID",
        "managed_identity_client_id",
        "",
        "Client id of a user-assigned managed identity; empty for the system-assigned one",
    ),
    Setting("DATAVERSE_STATIC_TOKEN", "static_token", "", "Bearer token for auth static_token", _secret, secret=True),
    Setting(
        "DATAVERSE_CONNECT_TIMEOUT",
        "connect_timeout",
        "10",
        "Seconds to establish a connection",
        _number(0.1, 600, integer=False),
    ),
    Setting(
        "DATAVERSE_READ_TIMEOUT",
        "read_timeout",
        "300",
        "Seconds to wait for an answer (a 5,000-row page takes a while)",
        _number(1, 3600, integer=False),
    ),
    Setting(
        "DATAVERSE_MAX_ATTEMPTS",
        "max_attempts",
        "6",
        "Tries per request, the first included",
        _number(1, 20, integer=True),
    ),
    Setting(
        "DATAVERSE_MAX_RETRY_WAIT",
        "max_retry_wait",
        "300",
        "Cap on the total seconds one request may spend waiting between retries",
        _number(0, 3600, integer=False),
    ),
    Setting(
        "DATAVERSE_MAX_PARALLEL",
        "max_parallel",
        "8",
        "Requests in flight at most (lowered further by Dataverse's x-ms-dop-hint; its limit is 52 per user)",
        _number(1, 52, integer=True),
    ),
    Setting(
        "DATAVERSE_PAGE_SIZE",
        "page_size",
        "5000",
        "Rows per page when reading (1 to 5,000)",
        _number(1, 5000, integer=True),
    ),
    Setting(
        "DATAVERSE_BULK_CHUNK_SIZE",
        "bulk_chunk_size",
        "1000",
        "Targets per CreateMultiple/UpdateMultiple/UpsertMultiple request",
        _number(1, 5000, integer=True),
    ),
    Setting(
        "ABM_DEFINITIONS_DIR",
        "definitions_dir",
        "definitions",
        "Folder of the definitions (scoring/*.json for scoring models), relative to the app root",
    ),
    Setting(
        "ABM_CONSENT_SOURCE",
        "consent_source",
        "contact",
        "contact (a consent column on contact) | contactpointconsent (real-time journeys' "
        "msdynmkt_contactpointconsent4, matched by the contact's email address)",
        _choice("contact", "contactpointconsent"),
    ),
    Setting(
        "ABM_CONSENT_COLUMN",
        "consent_column",
        "msgdpr_gdprconsent",
        "Contact column holding GDPR consent (a choice column)",
    ),
    Setting(
        "ABM_CONSENT_LEVELS",
        "consent_levels",
        "587030000=0,587030001=1,587030002=2,587030003=3,587030004=4,587030005=5",
        "Option values of the consent column and the consent level (0 to 5) each means",
        _consent_levels,
    ),
    Setting(
        "ABM_CONTACTPOINT_CONSENT_LEVELS",
        "contactpoint_consent_levels",
        "534120001=5,534120002=0",
        "With ABM_CONSENT_SOURCE=contactpointconsent: msdynmkt_value option values (534120001 opted in, 534120002 "
        "opted out) and the consent level each means; Not Set means unknown",
        _consent_levels,
    ),
    Setting(
        "ABM_SEND_EMAILS",
        "send_emails",
        "false",
        "true: journeys' emails are sent with SendEmail after they are recorded (needs server-side sync); false: "
        "recorded only",
        _choice("true", "false"),
    ),
    Setting(
        "ABM_PREDICTIVE_SCORE_MODEL",
        "predictive_score_model",
        "",
        "Name of the scoring model to mirror into msdyn_predictivescores (grades A to D); empty: no mirror",
    ),
    Setting(
        "AzureWebJobsStorage",
        "storage_connection",
        "",
        "Storage account of the Function app (UseDevelopmentStorage=true for Azurite); holds the state with "
        "ABM_STATE_STORE=azure, and the queues",
        _secret,
        secret=True,
    ),
    Setting(
        "ABM_STATE_STORE",
        "state_store",
        "sqlite",
        "sqlite (one local file, ABM_SQLITE_PATH) | azure (Table Storage and blobs of AzureWebJobsStorage)",
        _choice("sqlite", "azure"),
    ),
    Setting("ABM_SQLITE_PATH", "sqlite_path", "abm-state.sqlite", "State file with ABM_STATE_STORE=sqlite"),
    Setting(
        "ABM_STATE_PREFIX",
        "state_prefix",
        "abm",
        "Prefix of the state tables, blob container and queues in the storage account (letters and digits)",
        _prefix,
    ),
    Setting(
        "ABM_SYNC_SCHEDULE",
        "sync_schedule",
        "0 */15 * * * *",
        "NCRONTAB schedule of the timer sync, in UTC (default every 15 minutes)",
        _schedule,
    ),
    Setting(
        "ABM_SHARDS",
        "shards",
        "1",
        "Account shards a sync fans out to over the storage queue (1: the timer evaluates every account itself)",
        _number(1, 256, integer=True),
    ),
    Setting(
        "ABM_SALES_READY_WORKFLOW",
        "sales_ready_workflow",
        "",
        "Id of an on-demand workflow (primary table lead) started once for each lead that becomes sales-ready; "
        "empty: none",
        _guid_or_empty,
    ),
    Setting(
        "ABM_WEBHOOK_KEY",
        "webhook_key",
        "",
        "abm serve: the function key of the Dataverse webhook (Azure keeps its own keys)",
        _secret,
        secret=True,
    ),
    Setting(
        "ABM_REPLAY_KEY",
        "replay_key",
        "",
        "abm serve: the function key of /api/replay, for support; must differ from the webhook's",
        _secret,
        secret=True,
    ),
    Setting(
        "ABM_API_KEY",
        "api_key",
        "",
        "abm serve: the function key of /api/interactions and the insights routes",
        _secret,
        secret=True,
    ),
)


@dataclass(frozen=True)
class Settings:
    """Validated app settings. Build with `Settings.from_env()`; secrets are `Secret` (masked in repr)."""

    dataverse_url: str
    auth: AuthMode
    tenant_id: str
    client_id: str
    client_secret: Secret | None
    certificate_path: str
    certificate_password: Secret | None
    managed_identity_client_id: str
    static_token: Secret | None
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    max_retry_wait: float
    max_parallel: int
    page_size: int
    bulk_chunk_size: int
    definitions_dir: str
    consent_source: str
    consent_column: str
    consent_levels: dict[int, int]
    contactpoint_consent_levels: dict[int, int]
    send_emails: str
    predictive_score_model: str
    storage_connection: Secret | None
    state_store: str
    sqlite_path: str
    state_prefix: str
    sync_schedule: str
    shards: int
    sales_ready_workflow: str
    webhook_key: Secret | None
    replay_key: Secret | None
    api_key: Secret | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse every declared setting from `env` (default: the process environment)."""
        source = os.environ if env is None else env
        values = {}
        for setting in SETTINGS:
            raw = source.get(setting.name, "").strip() or setting.default
            values[setting.field] = setting.parse(raw, setting)
        return cls(**values)

    def require_dataverse(self) -> None:
        """Check that the settings needed to reach Dataverse with the chosen auth mode are all there."""
        needed = {
            "client_secret": ("DATAVERSE_TENANT_ID", "DATAVERSE_CLIENT_ID", "DATAVERSE_CLIENT_SECRET"),
            "certificate": ("DATAVERSE_TENANT_ID", "DATAVERSE_CLIENT_ID", "DATAVERSE_CERTIFICATE_PATH"),
            "managed_identity": (),
            "static_token": ("DATAVERSE_STATIC_TOKEN",),
            "none": (),
        }[self.auth]
        by_name = {s.name: getattr(self, s.field) for s in SETTINGS}
        missing = [name for name in ("DATAVERSE_URL", *needed) if not by_name[name]]
        if missing:
            raise SettingsError(f"DATAVERSE_AUTH={self.auth} needs {', '.join(missing)} (not set)")


# The functions whose keys `abm serve` checks, and the setting holding each key (Azure keeps its own keys).
LOCAL_KEYS = {
    "dataverse_webhook": "webhook_key",
    "replay": "replay_key",
    "interactions": "api_key",
    "insights_account": "api_key",
    "insights_journey": "api_key",
    "insights_cohorts": "api_key",
    "insights_flows": "api_key",
    "insights_paths": "api_key",
}


def function_keys(settings: Settings) -> dict[str, str]:
    """The function key of each function-level route for `abm serve`; the replay key must differ from the
    webhook's, so that whoever holds Dataverse's key cannot replay."""
    webhook, replay = settings.webhook_key, settings.replay_key
    if webhook and replay and webhook.reveal() == replay.reveal():
        raise SettingsError("ABM_REPLAY_KEY must differ from ABM_WEBHOOK_KEY")
    keys = {}
    for function, field_name in LOCAL_KEYS.items():
        secret = getattr(settings, field_name)
        if secret:
            keys[function] = secret.reveal()
    return keys


def load_local_settings(path: str | Path) -> dict[str, str]:
    """The `Values` of a local.settings.json file, for running the command line as the Functions host would."""
    file = Path(path)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{file}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise SettingsError(f"{file}: not valid JSON ({exc})") from None
    values = document.get("Values") if isinstance(document, dict) else None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise SettingsError(f"{file}: 'Values' must be an object of strings")
    return dict(values)


def export(values: Mapping[str, str]) -> None:
    """Put settings into the process environment (`abm serve`: the functions read theirs there, as in Azure)."""
    os.environ.update(values)


def environment(local_settings: str | Path | None = None) -> dict[str, str]:
    """The process environment, overlaid with the `Values` of a local.settings.json file when one is given."""
    env = dict(os.environ)
    if local_settings:
        env.update(load_local_settings(local_settings))
    return env
