"""A test client: serves a flow in-process on a loopback port and talks real HTTP to it.

with TestClient(app, overrides={RealDb: FakeDb}) as client:
    assert client.get("/bob").json() == "HELLO! BOB!"
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from typing import Any, Self, TypeVar

import aiohttp
import orjson

from bfctl.runtime.app import FlowApp
from bfctl.runtime.server import bind_socket, serve_worker
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.flow import Flow

T = TypeVar("T")


class TestResponse:
    __test__ = False  # not a pytest test class

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return orjson.loads(self.content)

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_code} {self.content[:80]!r}>"


class TestWebSocket:
    __test__ = False

    def __init__(self, client: TestClient, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._client = client
        self._ws = ws

    def send_text(self, data: str) -> None:
        self._client._run(self._ws.send_str(data))

    def send_json(self, data: Any) -> None:
        self._client._run(self._ws.send_json(data))

    def receive_text(self, timeout: float = 10.0) -> str:
        return self._client._run(self._ws.receive_str(timeout=timeout))

    def receive_json(self, timeout: float = 10.0) -> Any:
        return self._client._run(self._ws.receive_json(timeout=timeout))

    def close(self) -> None:
        self._client._run(self._ws.close())

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _cancel_leftovers() -> None:
    """Connections the server had not finished closing: end them before the loop goes."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class TestClient:
    """Serves ``flow`` in a background thread for the duration of a ``with`` block."""

    __test__ = False

    def __init__(
        self,
        flow: Flow,
        overrides: Mapping[Any, Any] | None = None,
        *,
        grace: float = 5.0,
        max_body: int | None = None,
        outputs: ResourceOutputs | None = None,
    ) -> None:
        kwargs = {} if max_body is None else {"max_body": max_body}
        self.flow_app = FlowApp(flow, overrides, outputs=outputs, **kwargs)
        self._grace = grace
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bf-test-server", daemon=True)
        self._stop: asyncio.Event | None = None
        self._served: Future[int] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""

    def __enter__(self) -> Self:
        self._thread.start()
        ready: Future[list[str]] = Future()
        sock = bind_socket("127.0.0.1", 0, reuse_port=False)

        async def start() -> None:
            self._stop = asyncio.Event()
            self._session = aiohttp.ClientSession()

        self._run(start())
        self._served = asyncio.run_coroutine_threadsafe(
            serve_worker(self.flow_app, sock, grace=self._grace, on_ready=ready.set_result, stop=self._stop),
            self._loop,
        )

        def stopped(served: Future[int]) -> None:
            if not ready.done():
                ready.set_exception(served.exception() or RuntimeError("server stopped"))

        self._served.add_done_callback(stopped)
        try:
            self.base_url = ready.result(timeout=60)[0]
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server: drains requests and runs teardowns, like SIGTERM does."""
        if self._served is None:
            return
        if self._session is not None:
            self._run(self._session.close())
        assert self._stop is not None  # made by __enter__ before the server it stops
        self._loop.call_soon_threadsafe(self._stop.set)
        try:
            if self._served.done() and self._served.exception() is not None:
                return  # the server never started; its error is what the caller sees
            self._served.result(timeout=60)
        finally:
            self._served = None
            self._run(_cancel_leftovers())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> TestResponse:
        """``data`` sends a form (a list value repeats the field); with ``files`` (each a
        ``bytes``, a ``(filename, bytes, content_type)`` or a list of them) a multipart one."""

        async def go() -> TestResponse:
            assert self._session is not None
            body: Any = orjson.dumps(json) if json is not None else content
            if data is not None or files is not None:
                body = _form(data or {}, files or {})
            hdrs = dict(headers or {})
            if json is not None:
                hdrs.setdefault("Content-Type", "application/json")
            async with self._session.request(method, self.base_url + path, data=body, params=params, headers=hdrs) as r:
                return TestResponse(r.status, r.headers, await r.read())

        return self._run(go())

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> TestResponse:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> TestResponse:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> TestResponse:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.request("DELETE", path, **kw)

    def websocket_connect(self, path: str, headers: Mapping[str, str] | None = None) -> TestWebSocket:
        assert self._session is not None
        ws = self._run(self._session.ws_connect(self.base_url + path, headers=headers))
        return TestWebSocket(self, ws)


def _form(data: Mapping[str, Any], files: Mapping[str, Any]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            form.add_field(name, str(item))
    for name, value in files.items():
        for item in value if isinstance(value, list) else [value]:
            filename, content, content_type = item if isinstance(item, tuple) else (name, item, None)
            form.add_field(name, content, filename=filename, content_type=content_type or "application/octet-stream")
    return form
