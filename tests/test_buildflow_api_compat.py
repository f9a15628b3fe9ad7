"""BuildFlow 0.3 user code, written as its users wrote it, served over real HTTP.

BuildFlow's endpoints ran on Starlette (through FastAPI), so its users annotated handlers and
dependencies with ``starlette.requests.Request`` or ``fastapi.Request``: those imports come from
the real packages here, as they would in a user's project.
"""

from __future__ import annotations

import dataclasses
import http.cookies
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fastapi
import fastapi.middleware.cors
import pytest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse as StarletteFileResponse
from starlette.responses import RedirectResponse as StarletteRedirectResponse
from starlette.responses import StreamingResponse as StarletteStreamingResponse
from starlette.websockets import WebSocket
from support import wait_until

from bfctl.testing import TestClient, TestResponse
from buildflow import Flow, FlowOptions, Service, collector, endpoint
from buildflow.dependencies import Scope, dependency
from buildflow.dependencies.auth import AuthenticatedGoogleUserDepBuilder
from buildflow.exceptions import FlowDeclarationError
from buildflow.middleware import SessionMiddleware
from buildflow.requests import Request as BuildFlowRequest
from buildflow.responses import FileResponse, RedirectResponse, StreamingResponse


@dependency(scope=Scope.PROCESS)
class Caller:
    """A dependency reading the request, and leaving a note on its state for the handler."""

    def __init__(self, request: Request) -> None:
        self.agent = request.headers.get("x-agent")
        request.state.seen_by = "Caller"


@dependency(scope=Scope.PROCESS)
class Token:
    """As BuildFlow's own BearerCredentials was written: whichever connection there is."""

    def __init__(self, request: Request = None, websocket: WebSocket = None) -> None:  # type: ignore[assignment]
        connection = request if request is not None else websocket
        self.token = connection.headers.get("Authorization", "").partition(" ")[2] or None


@dependency(scope=Scope.PROCESS)
class Origin:
    def __init__(self, connection: HTTPConnection) -> None:
        self.path = connection.url.path


def starlette_flow() -> Flow:
    app = Flow()
    service = app.service()
    service.add_middleware(SessionMiddleware, secret_key="a-long-random-session-key-for-tests")

    @service.endpoint("/items/{item_id}", method="GET")
    async def inspect(request: Request, caller: Caller) -> dict:
        client = request.client
        assert client is not None
        return {
            "header": request.headers["X-Agent"],
            "headers_getlist": request.headers.getlist("x-agent"),
            "cookie": request.cookies.get("flavour"),
            "query": dict(request.query_params),
            "tags": request.query_params.getlist("tag"),
            "path_params": dict(request.path_params),
            "url_path": request.url.path,
            "url_query": request.url.query,
            "url": str(request.url),
            "url_port": request.url.port,
            "base_url": str(request.base_url),
            "method": request.method,
            "client": [client.host, isinstance(client.port, int)],
            "caller": caller.agent,
            "state": request.state.seen_by,
        }

    @service.endpoint("/echo", method="POST")
    async def echo(request: fastapi.Request) -> dict:
        return {"body": (await request.body()).decode(), "json": await request.json()}

    @service.endpoint("/form", method="POST")
    async def form(request: fastapi.Request) -> dict:
        posted = await request.form()
        return {"tags": posted.getlist("tag"), "name": posted["name"]}

    @service.endpoint("/login", method="POST")
    def login(request: fastapi.Request, user: str) -> dict:
        request.session["user"] = user
        return {"ok": True}

    @service.endpoint("/me", method="GET")
    def me(request: Request, sdk_request: BuildFlowRequest) -> dict:
        return {"user": request.session.get("user"), "same": request is sdk_request}

    @service.endpoint("/token", method="GET")
    def token(credentials: Token, origin: Origin) -> dict:
        return {"token": credentials.token, "origin": origin.path}

    @service.endpoint("/ws", method="websocket")
    async def ws(websocket: fastapi.WebSocket, credentials: Token, origin: Origin) -> None:
        await websocket.accept()
        await websocket.send_json({"token": credentials.token, "origin": origin.path})
        await websocket.close()

    return app


def test_a_starlette_or_fastapi_request_is_the_request_with_what_users_read() -> None:
    with TestClient(starlette_flow()) as client:
        answer = client.get(
            "/items/42?tag=a&tag=b&q=x%20y",
            headers={"X-Agent": "probe", "Cookie": "flavour=mint"},
        )
        assert answer.status_code == 200, answer.text
        got = answer.json()
        port = client.base_url.rsplit(":", 1)[1]
        assert got == {
            "header": "probe",
            "headers_getlist": ["probe"],
            "cookie": "mint",
            "query": {"tag": "a", "q": "x y"},
            "tags": ["a", "b"],
            "path_params": {"item_id": "42"},
            "url_path": "/items/42",
            "url_query": "tag=a&tag=b&q=x%20y",
            "url": f"{client.base_url}/items/42?tag=a&tag=b&q=x%20y",
            "url_port": int(port),
            "base_url": f"{client.base_url}/",
            "method": "GET",
            "client": ["127.0.0.1", True],
            "caller": "probe",
            "state": "Caller",
        }

        echoed = client.post("/echo", json={"n": 1})
        assert echoed.status_code == 200, echoed.text
        assert echoed.json() == {"body": '{"n":1}', "json": {"n": 1}}
        assert client.post("/echo", content=b"{not json").status_code == 400

        formed = client.post("/form", data={"tag": ["x", "y"], "name": "ann"})
        assert formed.json() == {"tags": ["x", "y"], "name": "ann"}


def test_a_starlette_request_has_the_session() -> None:
    with TestClient(starlette_flow()) as client:
        login = client.post("/login", params={"user": "ann"})
        assert login.status_code == 200, login.text
        me = client.get("/me", headers=_session_cookie(login))
        assert me.json() == {"user": "ann", "same": True}


def test_a_dependency_written_like_buildflows_bearer_credentials_works_on_http_and_websockets() -> None:
    with TestClient(starlette_flow()) as client:
        answer = client.get("/token", headers={"Authorization": "Bearer abc"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"token": "abc", "origin": "/token"}
        assert client.get("/token").json() == {"token": None, "origin": "/token"}
        with client.websocket_connect("/ws", headers={"Authorization": "Bearer xyz"}) as ws:
            assert ws.receive_json() == {"token": "xyz", "origin": "/ws"}


def _session_cookie(response: TestResponse) -> dict[str, str]:
    return {"Cookie": f"session={http.cookies.SimpleCookie(response.headers['Set-Cookie'])['session'].value}"}


def _verify(token: str) -> dict:
    """Google's verdict on an ID token, for the one token these tests sign in with."""
    if token != "id-token-of-ann":
        raise ValueError("not a token Google issued")
    return {"sub": "7", "email": "ann@example.com", "email_verified": True, "name": "Ann"}


SessionGoogleUser = AuthenticatedGoogleUserDepBuilder(session_id_token="id_token", verify_token=_verify)


def test_the_google_user_dependency_reads_its_token_from_the_session() -> None:
    app = Flow()
    service = app.service()
    service.add_middleware(SessionMiddleware, secret_key="a-long-random-session-key-for-tests")

    @service.endpoint("/callback", method="GET")
    def callback(request: BuildFlowRequest, token: str) -> str:
        request.session["id_token"] = token
        return "signed in"

    @service.endpoint("/me", method="GET")
    def me(user: SessionGoogleUser) -> dict:
        return {"email": user.google_user.email}

    with TestClient(app) as client:
        assert client.get("/me").status_code == 403
        signed_in = client.get("/callback", params={"token": "id-token-of-ann"})
        answer = client.get("/me", headers=_session_cookie(signed_in))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"email": "ann@example.com"}


@dataclasses.dataclass
class Click:
    page: str


def test_standalone_decorators_and_a_service_built_by_hand() -> None:
    """BuildFlow's module-level decorators give callable declarations, added to a flow later;
    its ``Service`` took ``min_replics`` (sic) and its ``FlowOptions`` the AWS keys."""

    @endpoint("/hello", method="GET")
    def hello(name: str = "world") -> str:
        return f"Hello, {name}!"

    @collector("/clicks", "POST")
    def clicks(click: Click) -> Click:
        return click

    assert hello(name="ann") == "Hello, ann!"
    assert clicks(Click("home")) == Click("home")
    service = Service(base_route="/api", service_id="api", min_replics=0)
    assert service.min_replicas == 0
    service.add_endpoint(hello)
    options = FlowOptions(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s3cret", aws_session_token="t")
    app = Flow(flow_id="standalone", flow_options=options)
    app.add_service(service)
    app.add_collector(clicks)
    with TestClient(app) as client:
        assert client.get("/api/hello", params={"name": "bob"}).json() == "Hello, bob!"
        assert client.post("/clicks", json={"page": "home"}).json() == {"success": True}
    with pytest.raises(TypeError, match="aws_acces_key_id"):
        FlowOptions(aws_acces_key_id="AKIDEXAMPLE")  # type: ignore[call-arg]  # a typo is refused, as in BuildFlow


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _redirect_of(url: str) -> urllib.error.HTTPError:
    """The redirect answered to a GET of ``url``, not followed."""
    with pytest.raises(urllib.error.HTTPError) as redirected:
        urllib.request.build_opener(_NoRedirects).open(url, timeout=10)
    return redirected.value


def test_starlette_and_fastapi_middleware_classes_stand_for_ours() -> None:
    app = Flow()
    web = app.service(service_id="web")
    web.add_middleware(fastapi.middleware.cors.CORSMiddleware, allow_origins=["https://app.example"])
    secure = app.service("/secure", service_id="secure")
    secure.add_middleware(HTTPSRedirectMiddleware)
    web.endpoint("/ping", method="GET")(lambda: "pong")
    secure.endpoint("/ping", method="GET")(lambda: "secret pong")

    with TestClient(app) as client:
        answer = client.get("/ping", headers={"Origin": "https://app.example"})
        assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert (
            "Access-Control-Allow-Origin" not in client.get("/ping", headers={"Origin": "https://evil.example"}).headers
        )
        redirected = _redirect_of(client.base_url + "/secure/ping")
        assert redirected.code == 307 and redirected.headers["Location"].startswith("https://127.0.0.1")
        assert client.get("/secure/ping", headers={"X-Forwarded-Proto": "https"}).json() == "secret pong"

    with pytest.raises(FlowDeclarationError, match="GZipMiddleware is Starlette middleware"):
        web.add_middleware(GZipMiddleware, minimum_size=500)


async def _lines() -> AsyncIterator[str]:
    for word in ("one", "two"):
        yield word + "\n"


def test_responses_with_cookies_and_starlettes_own_responses(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    app = Flow()
    service = app.service()

    @service.endpoint("/login", method="GET")
    def login(request: BuildFlowRequest) -> RedirectResponse:
        response = RedirectResponse(request.url.replace(path="/home", query=""), status_code=303)
        response.set_cookie("sid", "abc", max_age=60, httponly=True)
        response.delete_cookie("old")
        return response

    @service.endpoint("/inline", method="GET")
    def inline() -> FileResponse:
        return FileResponse(notes, filename="notes.txt", content_disposition_type="inline")

    @service.endpoint("/html", method="GET")
    def html() -> fastapi.responses.HTMLResponse:
        return fastapi.responses.HTMLResponse("<b>hi</b>", status_code=201, headers={"X-Kind": "html"})

    @service.endpoint("/starlette-login", method="GET")
    def starlette_login() -> StarletteRedirectResponse:
        response = StarletteRedirectResponse("/home")
        response.set_cookie("sid", "xyz", httponly=True)
        return response

    @service.endpoint("/stream", method="GET")
    def stream() -> StarletteStreamingResponse:
        return StarletteStreamingResponse(_lines(), media_type="text/plain")

    @service.endpoint("/file", method="GET")
    def file() -> StarletteFileResponse:
        return StarletteFileResponse(notes, filename="notes.txt")

    with TestClient(app) as client:
        login_redirect = _redirect_of(client.base_url + "/login?next=1")
        assert login_redirect.code == 303
        assert login_redirect.headers["Location"] == client.base_url + "/home"
        cookies = login_redirect.headers.get_all("Set-Cookie")
        assert cookies[0] == "sid=abc; HttpOnly; Max-Age=60; Path=/; SameSite=lax"
        assert cookies[1].startswith('old=""; expires=') and "Max-Age=0" in cookies[1]
        shown = client.get("/inline")
        assert shown.text == "hello" and shown.headers["Content-Disposition"] == 'inline; filename="notes.txt"'

        page = client.get("/html")
        assert (page.status_code, page.text, page.headers["X-Kind"]) == (201, "<b>hi</b>", "html")
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        starlette_redirect = _redirect_of(client.base_url + "/starlette-login")
        assert starlette_redirect.code == 307 and starlette_redirect.headers["Location"] == "/home"
        assert starlette_redirect.headers["Set-Cookie"].startswith("sid=xyz;")
        assert client.get("/stream").text == "one\ntwo\n"
        served = client.get("/file")
        assert served.text == "hello" and served.headers["Content-Disposition"] == 'attachment; filename="notes.txt"'


@dependency(scope=Scope.PROCESS)
class Member:
    def __init__(self, request: BuildFlowRequest) -> None:
        if request.headers.get("X-Member") != "yes":
            raise StarletteHTTPException(401, "members only")


def test_starlettes_and_fastapis_http_exceptions_answer_with_their_status() -> None:
    app = Flow()
    service = app.service()

    @service.endpoint("/notes/{note_id}", method="GET")
    def note(note_id: int, member: Member) -> dict:
        raise fastapi.HTTPException(status_code=404, detail=f"no note {note_id}", headers={"X-Why": "gone"})

    with TestClient(app) as client:
        refused = client.get("/notes/3")
        assert (refused.status_code, refused.json()) == (401, {"detail": "members only"})
        missing = client.get("/notes/3", headers={"X-Member": "yes"})
        assert (missing.status_code, missing.json(), missing.headers["X-Why"]) == (404, {"detail": "no note 3"}, "gone")


def test_a_websocket_loop_catches_fastapis_websocket_disconnect() -> None:
    """BuildFlow exported no WebSocketDisconnect: its users caught FastAPI's or Starlette's."""
    gone: list[int] = []
    app = Flow()
    service = app.service()

    @service.endpoint("/shout", method="websocket")
    async def shout(websocket: fastapi.WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text((await websocket.receive_text()).upper())
        except fastapi.WebSocketDisconnect as disconnect:
            gone.append(disconnect.code)

    @service.endpoint("/sum", method="websocket")
    async def add(websocket: fastapi.WebSocket) -> None:
        await websocket.accept()
        async for numbers in websocket.iter_json():
            await websocket.send_json(sum(numbers))

    with TestClient(app) as client:
        with client.websocket_connect("/shout") as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "HI"
        wait_until(lambda: gone == [1000])
        with client.websocket_connect("/sum") as ws:
            ws.send_json([1, 2, 3])
            assert ws.receive_json() == 6


def test_a_blocking_sync_generator_streams_without_stopping_the_server() -> None:
    """As a BuildFlow chat bot streamed a model's tokens: the generator blocks between chunks,
    and the server must still answer other requests meanwhile."""
    started, released = threading.Event(), threading.Event()
    app = Flow()
    service = app.service()

    def tokens() -> Iterator[str]:
        yield "waiting: "
        started.set()
        yield "released" if released.wait(timeout=20) else "never released"

    @service.endpoint("/chat", method="POST")
    def chat() -> StreamingResponse:
        return StreamingResponse(tokens(), media_type="text/plain")

    @service.endpoint("/release", method="POST")
    def release() -> str:
        released.set()
        return "ok"

    with TestClient(app) as client:
        answers: list[str] = []
        streaming = threading.Thread(target=lambda: answers.append(client.post("/chat").text))
        streaming.start()
        assert started.wait(timeout=20)
        assert client.post("/release").json() == "ok"
        streaming.join(timeout=30)
        assert answers == ["waiting: released"]
