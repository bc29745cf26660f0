"""App settings: one place reads them; bad or missing ones are named, secrets never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abm.bootstrap import build_auth, build_client
from abm.settings import SETTINGS, Settings, SettingsError, environment, load_local_settings
from dataverse.auth import ClientCredentialsAuth, ManagedIdentityAuth, NoAuth, StaticTokenAuth

BASE = {
    "DATAVERSE_URL": "https://contoso.crm4.dynamics.com/api/data/v9.2/",
    "DATAVERSE_TENANT_ID": "t",
    "DATAVERSE_CLIENT_ID": "c",
    "DATAVERSE_CLIENT_SECRET": "very-secret",
}


def test_defaults_apply_and_the_url_is_normalised() -> None:
    settings = Settings.from_env(BASE)
    assert settings.dataverse_url == "https://contoso.crm4.dynamics.com"
    assert settings.auth == "client_secret"
    assert (settings.page_size, settings.bulk_chunk_size, settings.read_timeout) == (5000, 1000, 300.0)


def test_the_secret_is_masked_in_the_settings_repr() -> None:
    assert "very-secret" not in repr(Settings.from_env(BASE))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATAVERSE_AUTH", "password", "DATAVERSE_AUTH must be one of"),
        ("DATAVERSE_PAGE_SIZE", "6000", "DATAVERSE_PAGE_SIZE must be between 1 and 5000"),
        ("DATAVERSE_MAX_PARALLEL", "eight", "DATAVERSE_MAX_PARALLEL must be an integer"),
        ("DATAVERSE_READ_TIMEOUT", "0", "DATAVERSE_READ_TIMEOUT must be between"),
        ("DATAVERSE_URL", "contoso.crm.dynamics.com", "DATAVERSE_URL must be an https:// URL"),
    ],
)
def test_a_bad_value_is_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**BASE, name: value})


@pytest.mark.parametrize(
    ("auth", "missing"),
    [
        ("client_secret", "DATAVERSE_CLIENT_SECRET"),
        ("certificate", "DATAVERSE_CERTIFICATE_PATH"),
        ("static_token", "DATAVERSE_STATIC_TOKEN"),
    ],
)
def test_each_auth_mode_names_what_it_lacks(auth: str, missing: str) -> None:
    env = {**BASE, "DATAVERSE_AUTH": auth, "DATAVERSE_CLIENT_SECRET": ""}
    with pytest.raises(SettingsError, match=missing):
        build_client(Settings.from_env(env))


def test_a_missing_url_is_named() -> None:
    with pytest.raises(SettingsError, match="DATAVERSE_URL"):
        build_client(Settings.from_env({"DATAVERSE_AUTH": "none"}))


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({}, ClientCredentialsAuth),
        ({"DATAVERSE_AUTH": "certificate", "DATAVERSE_CERTIFICATE_PATH": "/x.pem"}, ClientCredentialsAuth),
        ({"DATAVERSE_AUTH": "managed_identity"}, ManagedIdentityAuth),
        ({"DATAVERSE_AUTH": "static_token", "DATAVERSE_STATIC_TOKEN": "t"}, StaticTokenAuth),
        ({"DATAVERSE_AUTH": "none"}, NoAuth),
    ],
)
def test_each_auth_mode_builds_its_token_provider(env: dict[str, str], kind: type) -> None:
    assert isinstance(build_auth(Settings.from_env({**BASE, **env})), kind)


def test_the_client_gets_the_configured_limits() -> None:
    env = {**BASE, "DATAVERSE_MAX_PARALLEL": "3", "DATAVERSE_PAGE_SIZE": "500", "DATAVERSE_CONNECT_TIMEOUT": "2.5"}
    client = build_client(Settings.from_env(env))
    assert client.transport.limiter.maximum == 3
    assert client.page_size == 500
    assert client.transport.config.connect_timeout == 2.5
    assert client.api_url == "https://contoso.crm4.dynamics.com/api/data/v9.2/"


def test_local_settings_values_overlay_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAVERSE_PAGE_SIZE", "100")
    monkeypatch.setenv("DATAVERSE_MAX_PARALLEL", "4")
    file = tmp_path / "local.settings.json"
    file.write_text(json.dumps({"IsEncrypted": False, "Values": {"DATAVERSE_PAGE_SIZE": "200"}}))
    settings = Settings.from_env(environment(file))
    assert (settings.page_size, settings.max_parallel) == (200, 4)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ('{"Values": {"A": 1}}', "'Values' must be an object of strings")],
)
def test_a_broken_local_settings_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "local.settings.json"
    file.write_text(content)
    with pytest.raises(SettingsError, match=message) as caught:
        load_local_settings(file)
    assert str(file) in str(caught.value)


def test_every_setting_name_is_unique_and_maps_to_a_field() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    fields = set(Settings.__dataclass_fields__)
    assert {s.field for s in SETTINGS} == fields
