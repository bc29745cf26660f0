"""Tokens: MSAL client credentials (secret, certificate), managed identity, static; secrets never shown."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from dataverse.auth import (
    CertificateCredential,
    ClientCredentialsAuth,
    ManagedIdentityAuth,
    NoAuth,
    Secret,
    StaticTokenAuth,
)
from dataverse.errors import DataverseAuthError, DataverseConnectionError

ORG = "https://contoso.crm4.dynamics.com"
TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT = "22222222-2222-2222-2222-222222222222"
LOGIN = f"https://login.microsoftonline.com/{TENANT}"
SECRET = "s3cr3t-V@lue"


def register_authority(mocked: responses.RequestsMock) -> str:
    """Entra ID's discovery document and token endpoint, as MSAL asks for them."""
    token_url = f"{LOGIN}/oauth2/v2.0/token"
    mocked.get(
        "https://login.microsoftonline.com/common/discovery/instance",
        json={"tenant_discovery_endpoint": f"{LOGIN}/v2.0/.well-known/openid-configuration", "metadata": []},
    )
    mocked.get(
        f"{LOGIN}/v2.0/.well-known/openid-configuration",
        json={
            "token_endpoint": token_url,
            "authorization_endpoint": f"{LOGIN}/oauth2/v2.0/authorize",
            "issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
        },
    )
    return token_url


@pytest.fixture
def mocked() -> responses.RequestsMock:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru("http://169.254.169.254")  # never used: MSAL must not probe IMDS in these tests
        yield rsps


def test_client_secret_gets_an_app_token_for_the_org_scope_and_caches_it(mocked: responses.RequestsMock) -> None:
    token_url = register_authority(mocked)
    mocked.post(token_url, json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600})
    auth = ClientCredentialsAuth(org_url=ORG, tenant_id=TENANT, client_id=CLIENT, credential=Secret(SECRET))
    assert auth.token() == "tok-1"
    assert auth.token() == "tok-1"
    posts = [c for c in mocked.calls if c.request.method == "POST"]
    assert len(posts) == 1  # the second call came from the process-wide cache
    form = parse_qs(posts[0].request.body)
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == [CLIENT]
    assert form["scope"] == [f"{ORG}/.default"]


def test_a_refused_token_request_becomes_an_auth_error_without_the_secret(mocked: responses.RequestsMock) -> None:
    token_url = register_authority(mocked)
    mocked.post(
        token_url,
        status=401,
        json={"error": "invalid_client", "error_description": f"AADSTS7000215: Invalid client secret {SECRET}.\nTrace"},
    )
    auth = ClientCredentialsAuth(
        org_url=ORG, tenant_id=TENANT, client_id="33333333-3333-3333-3333-333333333333", credential=Secret("other")
    )
    with pytest.raises(DataverseAuthError) as caught:
        auth.token()
    assert caught.value.code == "invalid_client"
    assert "other" not in str(caught.value) and "other" not in repr(auth)


def test_an_unreachable_identity_endpoint_is_a_connection_error(mocked: responses.RequestsMock) -> None:
    mocked.get(
        "https://login.microsoftonline.com/44444444-4444-4444-4444-444444444444/v2.0/.well-known/openid-configuration",
        body=requests.exceptions.ConnectionError("refused"),
    )
    auth = ClientCredentialsAuth(
        org_url=ORG, tenant_id="44444444-4444-4444-4444-444444444444", client_id=CLIENT, credential=Secret(SECRET)
    )
    with pytest.raises((DataverseConnectionError, DataverseAuthError)) as caught:
        auth.token()
    assert SECRET not in str(caught.value)


def self_signed(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "abm-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)
    path = tmp_path / "app.pem"
    path.write_bytes(pem)
    return path


def test_a_certificate_signs_a_client_assertion_instead_of_sending_a_secret(
    mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    tenant = "55555555-5555-5555-5555-555555555555"
    login = f"https://login.microsoftonline.com/{tenant}"
    mocked.get(
        f"{login}/v2.0/.well-known/openid-configuration",
        json={"token_endpoint": f"{login}/oauth2/v2.0/token", "authorization_endpoint": f"{login}/x", "issuer": "i"},
    )
    mocked.post(f"{login}/oauth2/v2.0/token", json={"access_token": "cert-tok", "expires_in": 3600})
    credential = CertificateCredential(self_signed(tmp_path))
    auth = ClientCredentialsAuth(org_url=ORG, tenant_id=tenant, client_id=CLIENT, credential=credential)
    assert auth.token() == "cert-tok"
    form = parse_qs(next(c for c in mocked.calls if c.request.method == "POST").request.body)
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    assert "client_secret" not in form
    assert "PRIVATE KEY" not in repr(credential)


def test_a_pem_without_the_certificate_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "key-only.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DataverseAuthError, match="both the private key and the certificate"):
        CertificateCredential(path).to_msal()


def test_managed_identity_asks_the_app_service_identity_endpoint_for_the_org_resource(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = "http://127.0.0.1:41741/msi/token"
    monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", "header-value")
    expires_on = str(int(time.time()) + 3600)  # App Service answers with an absolute expiry
    mocked.get(endpoint, json={"access_token": "mi-tok", "expires_on": expires_on, "resource": ORG})
    auth = ManagedIdentityAuth(org_url=ORG + "/", client_id="66666666-6666-6666-6666-666666666666")
    assert auth.token() == "mi-tok"
    request = mocked.calls[0].request
    query = parse_qs(request.url.split("?", 1)[1])
    assert query["resource"] == [ORG]
    assert query["client_id"] == ["66666666-6666-6666-6666-666666666666"]
    assert request.headers["X-IDENTITY-HEADER"] == "header-value"


def test_static_and_no_auth_for_the_emulator() -> None:
    assert NoAuth().token() is None
    static = StaticTokenAuth(Secret("emulator-token"))
    assert static.token() == "emulator-token"
    assert "emulator-token" not in repr(static)


def test_secrets_are_masked_in_repr_str_and_json_errors() -> None:
    secret = Secret(SECRET)
    assert SECRET not in repr(secret) and SECRET not in str(secret) and SECRET not in f"{secret}"
    auth = ClientCredentialsAuth(org_url=ORG, tenant_id=TENANT, client_id=CLIENT, credential=secret)
    assert SECRET not in repr(auth)
    with pytest.raises(TypeError):
        json.dumps(secret)
