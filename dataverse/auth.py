"""Bearer tokens for the Dataverse Web API: MSAL client credentials (secret or certificate), managed identity, or
a static/no token for the local emulator.

One MSAL application per credential and one token cache per process: a Functions worker keeps the module alive between
invocations, so `token()` before every request is cheap (MSAL answers from its cache until the token nears expiry).
MSAL reports failures as dicts; they become `DataverseAuthError` here and nowhere else. Secrets live in `Secret`,
whose repr is masked, and never reach a message, a log line or an exception.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msal
import requests

from dataverse.errors import DataverseAuthError, DataverseConnectionError

__all__ = [
    "CertificateCredential",
    "ClientCredentialsAuth",
    "ManagedIdentityAuth",
    "NoAuth",
    "Secret",
    "StaticTokenAuth",
    "TokenProvider",
]

_TOKEN_CACHE = msal.TokenCache()  # one per process, shared by every MSAL application built here


class Secret:
    """A string that must not be shown: masked in repr and str, revealed only to the library that needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


class TokenProvider(Protocol):
    """Gives the bearer token for the next request, or None to send no Authorization header."""

    def token(self) -> str | None: ...


class NoAuth:
    """No Authorization header: the local emulator accepts any token or none."""

    def token(self) -> str | None:
        return None

    def __repr__(self) -> str:
        return "NoAuth()"


class StaticTokenAuth:
    """A fixed bearer token (the emulator, or a token obtained elsewhere for a one-off command)."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def token(self) -> str | None:
        return self._token.reveal()

    def __repr__(self) -> str:
        return "StaticTokenAuth(token=Secret('***'))"


@dataclass(frozen=True, repr=False)
class CertificateCredential:
    """A client certificate: a PEM file holding the private key and the certificate, or a PFX (PKCS#12) file."""

    path: Path
    password: Secret | None = None

    def to_msal(self) -> dict[str, Any]:
        """The `client_credential` MSAL expects; MSAL derives the SHA-256 thumbprint from the certificate."""
        passphrase = self.password.reveal() if self.password else None
        if self.path.suffix.lower() in (".pfx", ".p12"):
            credential: dict[str, Any] = {"private_key_pfx_path": str(self.path)}
        else:
            try:
                pem = self.path.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise DataverseAuthError(f"cannot read the client certificate file {self.path}") from exc
            start = pem.find("-----BEGIN CERTIFICATE-----")
            if start < 0 or "PRIVATE KEY-----" not in pem:
                raise DataverseAuthError(f"{self.path} must hold both the private key and the certificate in PEM form")
            end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
            credential = {"private_key": pem, "public_certificate": pem[start:end]}
        if passphrase:
            credential["passphrase"] = passphrase
        return credential

    def __repr__(self) -> str:
        return f"CertificateCredential(path={str(self.path)!r})"


def _checked(result: dict[str, Any] | None) -> str:
    """The access token from an MSAL result, or `DataverseAuthError` with Entra ID's error code and first line."""
    if result and result.get("access_token"):
        return str(result["access_token"])
    result = result or {}
    error = result.get("error") or "no_token"
    description = str(result.get("error_description") or "").splitlines()
    detail = f": {description[0]}" if description else ""
    raise DataverseAuthError(f"Entra ID refused the token request ({error}){detail}", code=str(error))


class _MsalAuth:
    """Builds its MSAL application once, on first use (building one may call the network), and maps its failures."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        raise NotImplementedError

    def _request(self, app: Any) -> Any:
        raise NotImplementedError

    def token(self) -> str | None:
        try:
            with self._lock:
                if self._app is None:
                    self._app = self._build()
            return _checked(self._request(self._app))
        except DataverseAuthError:
            raise
        except requests.RequestException as exc:
            raise DataverseConnectionError(f"cannot reach the identity endpoint: {type(exc).__name__}") from exc
        except Exception as exc:  # MSAL raises ValueError and friends for bad configuration
            raise DataverseAuthError(f"token request failed: {type(exc).__name__}") from exc


class ClientCredentialsAuth(_MsalAuth):
    """App-only token for an Entra app registration (client secret or certificate), scope `<org>/.default`."""

    def __init__(
        self,
        *,
        org_url: str,
        tenant_id: str,
        client_id: str,
        credential: Secret | CertificateCredential,
        authority_host: str = "https://login.microsoftonline.com",
        http_client: requests.Session | None = None,
    ) -> None:
        super().__init__()
        self.scope = f"{org_url.rstrip('/')}/.default"
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._credential = credential
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._http_client = http_client

    def _build(self) -> Any:
        credential = self._credential.reveal() if isinstance(self._credential, Secret) else self._credential.to_msal()
        return msal.ConfidentialClientApplication(
            self.client_id,
            client_credential=credential,
            authority=self._authority,
            token_cache=_TOKEN_CACHE,
            http_client=self._http_client,
        )

    def _request(self, app: Any) -> Any:
        return app.acquire_token_for_client(scopes=[self.scope])

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"


class ManagedIdentityAuth(_MsalAuth):
    """Token from the Function app's managed identity (system-assigned, or user-assigned by client id)."""

    def __init__(
        self, *, org_url: str, client_id: str | None = None, http_client: requests.Session | None = None
    ) -> None:
        super().__init__()
        self.resource = org_url.rstrip("/")
        self.client_id = client_id
        self._http_client = http_client

    def _build(self) -> Any:
        identity: Any = (
            msal.UserAssignedManagedIdentity(client_id=self.client_id)
            if self.client_id
            else msal.SystemAssignedManagedIdentity()
        )
        return msal.ManagedIdentityClient(
            identity, http_client=self._http_client or requests.Session(), token_cache=_TOKEN_CACHE
        )

    def _request(self, app: Any) -> Any:
        return app.acquire_token_for_client(resource=self.resource)

    def __repr__(self) -> str:
        return f"ManagedIdentityAuth(client_id={self.client_id!r}, resource={self.resource!r})"
