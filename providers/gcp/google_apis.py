"""The Google REST APIs the preflight asks, over aiohttp: several questions at once, each bounded.

Credentials are Application Default Credentials from google-auth, refreshed once; each request
carries what google-auth puts on it (the bearer token, the quota project of a user's login), and
neither appears in any answer or error. Each API's root URL is Google's unless overridden the way
gcloud's are (``CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>``) or given to ``Endpoints``. Imported
only by the preflight; aiohttp and google-auth are imported when it runs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
LOGIN = "gcloud auth application-default login"
JSON = dict[str, Any]


def endpoint(api: str, environ: Mapping[str, str] = os.environ) -> str:
    """The root URL (ending in ``/``) of ``api`` (``serviceusage``): gcloud's override, else Google's."""
    url = environ.get(f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}") or f"https://{api}.googleapis.com/"
    return url if url.endswith("/") else f"{url}/"


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Root URLs of the APIs the preflight asks; the API version is part of each path."""

    cloudresourcemanager: str
    cloudbilling: str
    serviceusage: str
    orgpolicy: str
    iam: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Endpoints:
        return cls(**{field.name: endpoint(field.name, environ) for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Answer:
    """An API's answer: its status and JSON body (Google's error object when it refused)."""

    status: int
    body: JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def _error(self) -> JSON:
        error = self.body.get("error")
        return error if isinstance(error, dict) else {}

    @property
    def message(self) -> str:
        return str(self._error.get("message") or f"HTTP {self.status}")

    def _info(self) -> JSON:
        """The ``google.rpc.ErrorInfo`` of the error, where Google says the machine-readable reason."""
        for detail in self._error.get("details") or []:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
                return detail
        return {}

    @property
    def disabled_api(self) -> str | None:
        """The API that refused because the project calling it has not enabled it (``SERVICE_DISABLED``)."""
        info = self._info()
        if info.get("reason") != "SERVICE_DISABLED":
            return None
        return str((info.get("metadata") or {}).get("service") or "the API")

    @property
    def consumer(self) -> str:
        """The project whose APIs were counted (a user's login may name a quota project of its own)."""
        return str((self._info().get("metadata") or {}).get("consumer", "")).removeprefix("projects/")


class CredentialsError(Exception):
    """No usable Google credentials; the message says how to get them."""


@dataclasses.dataclass(frozen=True)
class SignedIn:
    """Whom the credentials are, and the headers that authorize a request (never shown)."""

    who: str
    #: ``serviceAccount:EMAIL`` for a service account, else None (a user's login does not say its email).
    member: str | None
    headers: Mapping[str, str] = dataclasses.field(repr=False)


def sign_in() -> SignedIn:
    """Application Default Credentials, refreshed; blocking (google-auth's transports are)."""
    import google.auth
    import google.auth.transport.requests
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError

    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
    except DefaultCredentialsError:
        raise CredentialsError(
            "no Google credentials were found (no GOOGLE_APPLICATION_CREDENTIALS, no gcloud application-default login)"
        ) from None
    try:
        credentials.refresh(google.auth.transport.requests.Request())
    except GoogleAuthError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CredentialsError(f"the Google credentials could not be refreshed ({first})") from None
    headers: dict[str, str] = {}
    credentials.apply(headers)
    email = getattr(credentials, "service_account_email", None)
    if isinstance(email, str) and "@" in email:
        return SignedIn(f"service account {email}", f"serviceAccount:{email}", headers)
    return SignedIn("the account of your application-default login", None, headers)


class GoogleREST:
    """Authorized JSON requests to ``endpoints``; a network failure raises ``aiohttp.ClientError``."""

    def __init__(self, session: aiohttp.ClientSession, signed_in: SignedIn, endpoints: Endpoints) -> None:
        self._session, self._headers, self.endpoints = session, dict(signed_in.headers), endpoints

    async def get(self, url: str, params: list[tuple[str, str]] | None = None) -> Answer:
        return await self._request("GET", url, params=params)

    async def post(self, url: str, body: JSON) -> Answer:
        return await self._request("POST", url, json=body)

    async def _request(self, method: str, url: str, **kwargs: Any) -> Answer:
        headers = {**self._headers, "Accept": "application/json"}
        async with self._session.request(method, url, headers=headers, **kwargs) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = {}
            return Answer(response.status, body if isinstance(body, dict) else {})
