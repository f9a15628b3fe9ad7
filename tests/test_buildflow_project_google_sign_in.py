"""BuildFlow 0.3 projects in the style of the published templates, served by ``bfctl serve``.

Google sign-in: the templates build ``AuthenticatedGoogleUserDepBuilder`` without a verifier, so
tokens go to Google's keys. Here Google is made unreachable on purpose (HTTPS through a proxy
port that refuses connections), as on a machine without network.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import Server, make_project, serving

PORTAL_CONFIG = """
project: portal
entry_point: main:app
"""

SIGN_IN_FLOW = """
import uuid

from buildflow import Flow
from buildflow.dependencies.auth import AuthenticatedGoogleUserDepBuilder
from buildflow.middleware import SessionMiddleware
from buildflow.responses import RedirectResponse

app = Flow()
portal = app.service(service_id="portal")
portal.add_middleware(SessionMiddleware, secret_key=str(uuid.uuid4()))

OptionalVisitor = AuthenticatedGoogleUserDepBuilder(
    session_id_token="google_token", raise_on_unauthenticated=False
)


@portal.endpoint(route="/", method="GET")
async def home(visitor: OptionalVisitor) -> str:
    if visitor.google_user is None:
        return RedirectResponse("/signin")
    return f"Welcome back, {visitor.google_user.name}"


@portal.endpoint(route="/signin", method="GET")
async def signin():
    return RedirectResponse("https://accounts.google.com/o/oauth2/auth?client_id=portal")
"""


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but never listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def google_unreachable_env(bfctl_env: dict[str, str], refusing_port: int) -> dict[str, str]:
    env = {k: v for k, v in bfctl_env.items() if k.lower() not in ("no_proxy", "https_proxy", "all_proxy")}
    proxy = f"http://127.0.0.1:{refusing_port}"
    return {**env, "HTTPS_PROXY": proxy, "https_proxy": proxy}


def fetch(server: Server, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """One GET without following redirects: status, headers, body."""
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def test_google_sign_in_without_google(tmp_path: Path, google_unreachable_env: dict[str, str]) -> None:
    project = make_project(tmp_path / "portal", {"buildflow.yaml": PORTAL_CONFIG, "main.py": SIGN_IN_FLOW})
    forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ2aXNpdG9yIn0.c2lnbmF0dXJl"
    with serving(["--port", "0"], project, google_unreachable_env) as server:
        status, headers, _ = fetch(server, "/")
        assert (status, headers["Location"]) == (307, "/signin")
        status, headers, _ = fetch(server, "/signin")
        assert status == 307 and headers["Location"].startswith("https://accounts.google.com/")

        # Not a JWT: the client's mistake, known without asking Google.
        status, _, body = fetch(server, "/", {"Authorization": "Bearer not-a-google-token"})
        assert status == 401, body
        assert "not a JWT" in json.loads(body)["detail"]

        # A JWT whose keys cannot be fetched: the server cannot verify it, and says so.
        status, _, body = fetch(server, "/", {"Authorization": f"Bearer {forged}"})
        assert status == 503, body
        assert json.loads(body)["detail"] == "Google's signing keys could not be fetched to verify the token"
        assert server.stop() == 0
    output = "\n".join(server.lines)
    assert "Traceback" not in output
    assert forged not in output and "not-a-google-token" not in output
