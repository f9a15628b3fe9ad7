"""Class-based endpoints, collectors without a sink, websockets and header credentials."""

import dataclasses
from typing import Annotated

import pytest

from bfctl.runtime.app import FlowApp
from bfctl.runtime.errors import StartupError
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.dependencies.auth import AuthenticatedGoogleUserDepBuilder
from buildflow.dependencies.headers import BearerCredentials, OptionalBearerCredentials
from buildflow.exceptions import HTTPException
from buildflow.requests import Request, WebSocket


@dependency(Scope.REPLICA)
class Greeting:
    def __init__(self) -> None:
        self.word = "hello"


@dataclasses.dataclass
class Event:
    user: str
    kind: str


def make_app(log: list[str]) -> Flow:
    app = Flow()
    svc = app.service(base_route="/v1")

    @svc.endpoint("/counter", method="POST")
    class Counter:
        def setup(self) -> None:
            log.append("setup")
            self.count = 0

        def process(self, greeting: Greeting, step: int = 1) -> dict:
            self.count += step
            return {"count": self.count, "word": greeting.word}

        def teardown(self) -> None:
            log.append("teardown")

    @svc.endpoint("/ws/{room}", method="websocket")
    async def chat(websocket: WebSocket, room: str, greeting: Greeting, name: str = "anon"):
        await websocket.accept()
        await websocket.send_text(f"{greeting.word} {name} in {room}")
        async for message in websocket.iter_text():
            if message == "bye":
                await websocket.close()
                return
            await websocket.send_json({"echo": message})

    @svc.endpoint("/ws-reject", method="websocket")
    async def reject(websocket: WebSocket):
        raise HTTPException(403, "no entry")

    @svc.endpoint("/private")
    def private(creds: BearerCredentials):
        return {"token": creds.token}

    @svc.endpoint("/maybe")
    def maybe(creds: OptionalBearerCredentials):
        return {"token": creds.token}

    @app.collector("/events", method="POST")
    def collect(event: Event) -> Event:
        log.append(f"event {event.user}")
        return event

    return app


@pytest.fixture(scope="module")
def served():
    log: list[str] = []
    with TestClient(make_app(log)) as client:
        yield client, log
    assert log[-1] == "teardown"


def test_class_endpoint_runs_setup_once_and_keeps_state(served):
    client, log = served
    assert client.post("/v1/counter").json() == {"count": 1, "word": "hello"}
    assert client.post("/v1/counter?step=5").json() == {"count": 6, "word": "hello"}
    assert log.count("setup") == 1


def test_collector_without_sink_answers_success(served):
    client, log = served
    r = client.post("/events", json={"user": "ann", "kind": "click"})
    assert r.status_code == 200 and r.json() == {"success": True}
    assert "event ann" in log
    bad = client.post("/events", json={"user": "ann"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "kind"]


def test_websocket_endpoint(served):
    client, _ = served
    with client.websocket_connect("/v1/ws/lobby?name=bo") as ws:
        assert ws.receive_text() == "hello bo in lobby"
        ws.send_text("hi")
        assert ws.receive_json() == {"echo": "hi"}
        ws.send_text("bye")


def test_websocket_rejected_before_accept_is_an_http_error(served):
    client, _ = served
    r = client.get(
        "/v1/ws-reject",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert r.status_code == 403 and r.json() == {"detail": "no entry"}


def test_bearer_credentials(served):
    client, _ = served
    r = client.get("/v1/private")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in r.json()["detail"]
    assert client.get("/v1/private", headers={"Authorization": "Basic xyz"}).status_code == 401
    assert client.get("/v1/private", headers={"Authorization": "Bearer abc"}).json() == {"token": "abc"}
    assert client.get("/v1/maybe").json() == {"token": None}


def test_google_user_dependency_with_a_verifier():
    claims = {
        "good": {"sub": "1", "email": "a@b.c", "email_verified": True, "name": "A"},
        "unverified": {"sub": "2", "email": "x@y.z", "email_verified": False},
    }

    def verify(token: str) -> dict:
        if token not in claims:
            raise ValueError(f"Wrong number of segments in token: {token}")  # as google-auth's text does
        return claims[token]

    GoogleUserDep = AuthenticatedGoogleUserDepBuilder(verify_token=verify)
    app = Flow()

    @app.service().endpoint("/me")
    def me(user: GoogleUserDep):
        return user.google_user

    with TestClient(app) as client:
        assert client.get("/me").status_code == 403
        refused = client.get("/me", headers={"Authorization": "Bearer forged-secret"})
        assert refused.status_code == 401
        assert "forged-secret" not in refused.text  # the verifier's text may quote the token: never sent back
        assert client.get("/me", headers={"Authorization": "Bearer unverified"}).status_code == 403
        assert client.get("/me", headers={"Authorization": "Bearer good"}).json() == {
            "google_account_id": "1",
            "email": "a@b.c",
            "email_verified": True,
            "name": "A",
        }


class Greeter:
    """An object whose ``__call__`` is ``async def``, as pipedream's dispatcher functions may be."""

    def __init__(self, word: str) -> None:
        self.word = word

    async def __call__(self, name: str = "anon") -> dict[str, str]:
        return {"greeting": f"{self.word} {name}"}


class Shouted:
    async def __call__(self, request: Request) -> str:
        return request.headers.get("x-name", "nobody").upper()


shouted = dependency(Scope.PROCESS)(Shouted())


def test_an_object_with_an_async_call_is_awaited_as_an_endpoint_and_as_a_dependency():
    app = Flow()
    svc = app.service()
    svc.endpoint("/greet")(Greeter("hello"))

    @svc.endpoint("/shout")
    def shout(name: Annotated[str, shouted]) -> dict[str, str]:
        return {"name": name}

    with TestClient(app) as client:
        assert client.get("/greet", params={"name": "ann"}).json() == {"greeting": "hello ann"}
        assert client.get("/shout", headers={"x-name": "bob"}).json() == {"name": "BOB"}


def test_sync_websocket_endpoint_is_rejected_at_startup():
    app = Flow()

    @app.service().endpoint("/ws", method="websocket")
    def sync_ws(websocket: WebSocket):
        pass

    with pytest.raises(StartupError, match="websocket endpoints must be `async def`"):
        FlowApp(app)


def test_class_without_process_is_rejected():
    app = Flow()

    @app.service().endpoint("/c")
    class NoProcess:
        pass

    with pytest.raises(StartupError, match="needs a `process` method"):
        FlowApp(app)


def test_cors_and_https_redirect_middleware():
    from buildflow.middleware import CORSMiddleware, HTTPSRedirectMiddleware

    app = Flow()
    api = app.service(base_route="/api")
    api.add_middleware(
        CORSMiddleware,
        allow_origins=["https://app.example"],
        allow_methods=["GET", "POST"],
        allow_headers=["x-token"],
        allow_credentials=True,
        expose_headers=["x-total"],
    )
    secure = app.service(base_route="/secure")
    secure.add_middleware(HTTPSRedirectMiddleware)
    plain = app.service(base_route="/plain")

    @api.endpoint("/items", method="GET")
    def items():
        return ["a"]

    @secure.endpoint("/data")
    def data():
        return "secret"

    @plain.endpoint("/x")
    def x():
        return "x"

    with TestClient(app) as client:
        r = client.get("/api/items", headers={"Origin": "https://app.example"})
        assert r.json() == ["a"]
        assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
        assert r.headers["Access-Control-Expose-Headers"] == "x-total"
        assert (
            "Access-Control-Allow-Origin"
            not in client.get("/api/items", headers={"Origin": "https://evil.example"}).headers
        )
        pre = client.request(
            "OPTIONS",
            "/api/items",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-Token",
            },
        )
        assert pre.status_code == 200 and "POST" in pre.headers["Access-Control-Allow-Methods"]
        assert "x-token" in pre.headers["Access-Control-Allow-Headers"]
        bad = client.request(
            "OPTIONS", "/api/items", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
        )
        assert bad.status_code == 400 and bad.json() == {"detail": "Disallowed CORS origin"}
        assert (
            "Access-Control-Allow-Origin"
            not in client.get("/plain/x", headers={"Origin": "https://app.example"}).headers
        )
        assert client.get("/plain/x").json() == "x"
        assert client.get("/secure/data", headers={"X-Forwarded-Proto": "https"}).json() == "secret"
        import http.client
        import urllib.parse

        url = urllib.parse.urlsplit(client.base_url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", "/secure/data?q=1")
        redirect = conn.getresponse()
        assert redirect.status == 307
        assert redirect.getheader("Location") == f"https://{url.hostname}/secure/data?q=1"
        conn.close()
