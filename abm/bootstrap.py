"""Composition root: builds the Dataverse client (and, as issues add them, the stores and jobs) from `Settings`.

Entry points (the Function app, the `abm` command) call these and nothing deeper. In a Functions worker the client
is built once per process and shared, so its connection pool and MSAL token cache are reused across invocations.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from abm import __version__
from abm.definitions import (
    definition_files,
    load_journeys,
    load_scoring_models,
    load_segments,
    scoring_model_files,
)
from abm.settings import Settings
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
from dataverse.transport import TransportConfig
from journeys.model import Journey
from journeys.segments import Segment
from scoring.model import ScoringModel

__all__ = [
    "build_auth",
    "build_client",
    "journeys",
    "mapping_config",
    "scoring_models",
    "segments",
    "shared_client",
]

_lock = threading.Lock()


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
