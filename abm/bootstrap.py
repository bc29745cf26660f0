"""Composition root: builds the Dataverse client, the state store and the run setup (definitions and options) from
`Settings`, and composes dry runs.

Entry points (the Function app, the `abm` command) call these and nothing deeper. In a Functions worker the client
is built once per process and shared, so its connection pool and MSAL token cache are reused across invocations.
This is the one module of the service that names concrete adapters (the HTTP transport, the recording transport,
the SQLite, Azure Tables and overlay stores); the jobs take their ports.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

from abm import __version__
from abm.definitions import (
    DefinitionErrors,
    definition_files,
    load_journeys,
    load_scoring_models,
    load_segments,
    read_definitions,
    scoring_model_files,
)
from abm.dry_run import DryRun
from abm.jobs.pipeline import RunSetup
from abm.settings import Settings, SettingsError
from dataverse.auth import (
    CertificateCredential,
    ClientCredentialsAuth,
    ManagedIdentityAuth,
    NoAuth,
    Secret,
    StaticTokenAuth,
    TokenProvider,
)
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from dataverse.recording import RecordingTransport
from dataverse.transport import TransportConfig
from journeys.model import Journey
from journeys.segments import Segment
from scoring.model import ScoringModel
from statestore.overlay import OverlayStore
from statestore.port import StateStore
from statestore.sqlite import SqliteStateStore

__all__ = [
    "Runtime",
    "build_auth",
    "build_client",
    "build_dry_run",
    "build_runtime",
    "build_setup",
    "build_store",
    "journeys",
    "mapping_config",
    "scoring_models",
    "segments",
    "shared_client",
    "shared_runtime",
]

_lock = threading.RLock()  # re-entrant: shared_runtime builds the shared client under it


def build_auth(settings: Settings) -> TokenProvider:
    """The token provider for the configured auth mode (`require_dataverse` has checked what it needs)."""
    if settings.auth == "client_secret":
        assert settings.client_secret is not None
        credential: Secret | CertificateCredential = settings.client_secret
    elif settings.auth == "certificate":
        credential = CertificateCredential(Path(settings.certificate_path), settings.certificate_password)
    elif settings.auth == "managed_identity":
        return ManagedIdentityAuth(
            org_url=settings.dataverse_url, client_id=settings.managed_identity_client_id or None
        )
    elif settings.auth == "static_token":
        assert settings.static_token is not None
        return StaticTokenAuth(settings.static_token)
    else:
        return NoAuth()
    return ClientCredentialsAuth(
        org_url=settings.dataverse_url,
        tenant_id=settings.tenant_id,
        client_id=settings.client_id,
        credential=credential,
    )


def build_client(settings: Settings) -> DataverseClient:
    """A Dataverse client configured from the settings; `SettingsError` if something it needs is missing."""
    settings.require_dataverse()
    config = TransportConfig(
        org_url=settings.dataverse_url,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_attempts=settings.max_attempts,
        max_retry_wait=settings.max_retry_wait,
        max_parallel=settings.max_parallel,
        user_agent=f"abm-dataverse/{__version__}",
    )
    return DataverseClient(
        config, build_auth(settings), page_size=settings.page_size, bulk_chunk_size=settings.bulk_chunk_size
    )


def mapping_config(settings: Settings) -> MappingConfig:
    """How Dataverse rows become records in this org (consent column and its option values)."""
    return MappingConfig(
        consent_column=settings.consent_column,
        consent_levels=settings.consent_levels,
        consent_source=settings.consent_source,
        contactpoint_levels=settings.contactpoint_consent_levels,
    )


def journeys(settings: Settings) -> list[Journey]:
    """The journeys of the configured definitions folder, validated (`DefinitionError` names the problem)."""
    return load_journeys(definition_files(settings.definitions_dir, "journeys"))


def segments(settings: Settings) -> list[Segment]:
    """The segments of the configured definitions folder, validated (`DefinitionError` names the problem)."""
    return load_segments(definition_files(settings.definitions_dir, "segments"))


def scoring_models(settings: Settings) -> list[ScoringModel]:
    """The scoring models of the configured definitions folder, validated (`DefinitionError` names the problem)."""
    return load_scoring_models(scoring_model_files(settings.definitions_dir))


def build_setup(settings: Settings) -> RunSetup:
    """The definitions and the org-specific options a run evaluates with; `DefinitionErrors` lists every problem
    of the definitions' files (their columns are checked against the org before a run, `abm.jobs.columns`), and a
    predictive-score model the definitions do not hold is a settings problem."""
    found, problems = read_definitions(settings.definitions_dir)
    if problems:
        raise DefinitionErrors(problems)
    predictive = settings.predictive_score_model or None
    if predictive is not None and predictive not in {m.name for m in found.models}:
        known = ", ".join(sorted(m.name for m in found.models)) or "none"
        raise SettingsError(f"ABM_PREDICTIVE_SCORE_MODEL names no defined scoring model ({known})")
    return RunSetup(
        models=found.models,
        segments=found.segments,
        journeys=found.journeys,
        config=mapping_config(settings),
        predictive_model=predictive,
        send_emails=settings.send_emails == "true",
        handoff_workflow=settings.sales_ready_workflow or None,
        columns=found.columns,
    )


def build_store(settings: Settings) -> StateStore:
    """The configured state store: one SQLite file, or Table Storage in the Function app's storage account."""
    if settings.state_store == "sqlite":
        return SqliteStateStore(settings.sqlite_path)
    if settings.storage_connection is None:
        raise SettingsError("ABM_STATE_STORE=azure needs AzureWebJobsStorage (not set)")
    from statestore.azure_tables import AzureStateStore  # noqa: PLC0415 (the Azure SDKs load only when used)

    return AzureStateStore(settings.storage_connection.reveal(), prefix=settings.state_prefix)


def build_dry_run(client: DataverseClient, store: StateStore) -> DryRun:
    """A dry run over `client` and `store`: reads go to Dataverse through `client`'s transport (counted in its
    `stats`) and to `store`; writes are recorded in `writes` and answered as Dataverse answers a success, and the
    store's are kept in memory, so the run sees its own writes and nothing real is written."""
    recorder = RecordingTransport(client.transport)
    recording = DataverseClient(
        recorder.config, page_size=client.page_size, bulk_chunk_size=client.bulk_chunk_size, transport=recorder
    )
    return DryRun(recording, OverlayStore(store), recorder.writes)


@dataclass(frozen=True)
class Runtime:
    """What every function needs: the settings, the Dataverse client, the state store, the run setup."""

    settings: Settings
    client: DataverseClient
    store: StateStore
    setup: RunSetup

    def dry_run(self) -> DryRun:
        """This runtime's client and store composed into a dry run (`build_dry_run`)."""
        return build_dry_run(self.client, self.store)


def build_runtime(settings: Settings) -> Runtime:
    return Runtime(settings, build_client(settings), build_store(settings), build_setup(settings))


@functools.cache
def _cached_runtime() -> Runtime:
    settings = Settings.from_env()
    return Runtime(settings, shared_client(), build_store(settings), build_setup(settings))


def shared_runtime() -> Runtime:
    """The process-wide runtime built from the environment (what the Function app uses)."""
    with _lock:
        return _cached_runtime()


@functools.cache
def _cached_client() -> DataverseClient:
    return build_client(Settings.from_env())


def shared_client() -> DataverseClient:
    """The process-wide client built from the environment (what the Function app uses)."""
    with _lock:
        return _cached_client()


def reset() -> None:
    """Forget the shared client (tests, or after the app settings changed in a long-lived process)."""
    with _lock:
        if _cached_client.cache_info().currsize:
            _cached_client().close()
        _cached_client.cache_clear()
        _cached_runtime.cache_clear()
