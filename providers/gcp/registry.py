"""Google's REST APIs that publishing an image calls, and Artifact Registry's answer to "is this tag there?".

A small JSON client over urllib, with Application Default Credentials from google-auth: no
HTTP library beyond the standard one, and google-auth is imported only when a publish needs it
(``bfctl build`` with Docker alone never loads it). Endpoints are Google's, overridable the way
gcloud's are (``CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>``), and Cloud Storage by
``STORAGE_EMULATOR_HOST`` as Google's storage libraries do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlparse

from bfctl.providers.gcp.context import ImageBuildError

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: Seconds one HTTP request may take (an upload of a large context included).
TIMEOUT = 120.0
_LOGIN = "gcloud auth application-default login"
NO_CREDENTIALS = (
    "no Google credentials were found, and publishing the image calls Google's APIs. Run "
    f"`{_LOGIN}` (or set GOOGLE_APPLICATION_CREDENTIALS to a service account's key file), then run this command again."
)

JSON = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Root URLs (ending in ``/``) of the APIs; the API version is part of each path."""

    cloudbuild: str
    artifactregistry: str
    storage: str
    #: An emulator gets no credentials, as with Google's storage libraries.
    storage_emulated: bool

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Endpoints:
        emulator = environ.get("STORAGE_EMULATOR_HOST", "")
        if emulator and "://" not in emulator:
            emulator = f"http://{emulator}"
        return cls(
            cloudbuild=_root(environ, "CLOUDBUILD", "https://cloudbuild.googleapis.com/"),
            artifactregistry=_root(environ, "ARTIFACTREGISTRY", "https://artifactregistry.googleapis.com/"),
            storage=_slash(emulator or "https://storage.googleapis.com/"),
            storage_emulated=bool(emulator),
        )


def _root(environ: Mapping[str, str], api: str, default: str) -> str:
    return _slash(environ.get(f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}") or default)


def _slash(url: str) -> str:
    return url if url.endswith("/") else f"{url}/"


@dataclasses.dataclass(frozen=True)
class _Response:
    """What google-auth reads of an HTTP response (its ``transport.Response`` interface)."""

    status: int
    headers: Mapping[str, str]
    data: bytes


def _send(method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float) -> _Response:
    """One HTTP request; error statuses are returned, network failures raise ``URLError``."""
    if urlparse(url).scheme not in ("http", "https"):
        raise ImageBuildError(f"{url} is not an http(s) URL; check the endpoint overrides in your environment")
    request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return _Response(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return _Response(exc.code, dict(exc.headers), exc.read())


class _AuthTransport:
    """google-auth's ``transport.Request`` interface over urllib, for refreshing tokens."""

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_: object,
    ) -> _Response:
        from google.auth.exceptions import TransportError

        try:
            return _send(method, url, body, headers or {}, timeout or TIMEOUT)
        except (urllib.error.URLError, TimeoutError) as exc:
            raise TransportError(f"cannot reach {urlparse(url).netloc}: {exc}") from exc


class GoogleAPIs:
    """Authorized JSON calls to Google's APIs; the bearer token never appears in output or errors."""

    def __init__(self, credentials: Any, endpoints: Endpoints) -> None:
        # Any: google.auth.credentials.Credentials, whose module is imported lazily (see connect)
        self._credentials = credentials
        self._transport = _AuthTransport()
        self.endpoints = endpoints

    @classmethod
    def connect(cls) -> GoogleAPIs:
        """Application Default Credentials for the cloud-platform scope, or an error saying how to get them."""
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, _ = google.auth.default(scopes=[SCOPE])
        except DefaultCredentialsError:
            raise ImageBuildError(NO_CREDENTIALS) from None
        return cls(credentials, Endpoints.from_environment())

    def call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        body: JSON | None = None,
        data: bytes | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> JSON | None:
        """The JSON answer to a request (``body`` as JSON or raw ``data``); None for a 404 when ``missing_ok``.

        ``what`` names the request in errors ("creating the Cloud Build build").
        """
        payload = json.dumps(body).encode() if body is not None else data
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if not (self.endpoints.storage_emulated and url.startswith(self.endpoints.storage)):
            self._authorize(method, url, headers)
        try:
            response = _send(method, url, payload, headers, TIMEOUT)
        except (urllib.error.URLError, TimeoutError) as exc:
            raise ImageBuildError(
                f"{what} failed: cannot reach {urlparse(url).netloc} ({exc}); check your network connection"
            ) from None
        if response.status == 404 and missing_ok:
            return None
        if not 200 <= response.status < 300:
            raise ImageBuildError(f"{what} failed: HTTP {response.status}: {_message(response.data)}{_hint(response)}")
        answer: JSON = json.loads(response.data or b"{}")
        return answer

    def access_token(self) -> str:
        """The credentials' current access token, for a program that logs in with it (Docker);
        never to be shown."""
        self._authorize("GET", self.endpoints.artifactregistry, {})
        return str(self._credentials.token)

    def _authorize(self, method: str, url: str, headers: dict[str, str]) -> None:
        """Add the bearer token, refreshing it first when it is missing or expired."""
        from google.auth.exceptions import GoogleAuthError

        try:
            self._credentials.before_request(self._transport, method, url, headers)
        except GoogleAuthError as exc:
            raise ImageBuildError(
                f"your Google credentials could not be refreshed ({exc}); run `{_LOGIN}` and try again"
            ) from None


def _message(data: bytes) -> str:
    """The message of Google's error body, or the body itself."""
    try:
        error = json.loads(data)["error"]
        return str(error["message"] if isinstance(error, dict) else error)
    except (ValueError, KeyError, TypeError):
        return data.decode(errors="replace").strip()[:500] or "(no message)"


def _hint(response: _Response) -> str:
    if response.status == 401:
        return f"; run `{_LOGIN}` and try again"
    if response.status == 403:
        return (
            "; check that your account has the needed role in the project and that the API is enabled (`gcloud "
            "services enable cloudbuild.googleapis.com artifactregistry.googleapis.com storage.googleapis.com`)"
        )
    return ""


def tag_digest(api: GoogleAPIs, project: str, region: str, repository: str, image: str, tag: str) -> str | None:
    """The digest Artifact Registry holds under ``image:tag``, or None when it has no such tag (or repository)."""
    package = quote(image, safe="")  # a nested image path is one package, its slashes escaped
    url = (
        f"{api.endpoints.artifactregistry}v1/projects/{project}/locations/{region}/repositories/{repository}"
        f"/packages/{package}/tags/{quote(tag, safe='')}"
    )
    found = api.call("GET", url, f"looking up {image}:{tag} in Artifact Registry", missing_ok=True)
    if found is None:
        return None
    # "projects/P/locations/L/repositories/R/packages/IMAGE/versions/sha256:..."
    return str(found["version"]).rpartition("/")[2]
