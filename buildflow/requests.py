"""Request and WebSocket objects handed to handlers and dependencies that ask for them.

They follow the Starlette names BuildFlow users know (``headers``, ``query_params``,
``path_params``, ``await body()``) over the server's own request object, which stays
reachable as ``.raw`` for full control. Built only for handlers that declare them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from buildflow.exceptions import HTTPException, WebSocketDisconnect
from buildflow.uploads import File, Form, UploadFile

if TYPE_CHECKING:
    from aiohttp import web
    from yarl import URL


class Address(NamedTuple):
    host: str | None
    port: int | None


class _Connection:
    """What a plain request and a WebSocket share: URL, headers and parameters."""

    __slots__ = ("_raw", "_state")

    def __init__(self, raw: web.Request) -> None:
        self._raw = raw
        self._state: SimpleNamespace | None = None

    @property
    def raw(self) -> web.Request:
        """The underlying aiohttp request."""
        return self._raw

    @property
    def url(self) -> URL:
        return self._raw.url

    @property
    def headers(self) -> Mapping[str, str]:
        return self._raw.headers

    @property
    def query_params(self) -> Mapping[str, str]:
        return self._raw.query

    @property
    def path_params(self) -> Mapping[str, str]:
        return self._raw.match_info

    @property
    def cookies(self) -> Mapping[str, str]:
        return self._raw.cookies

    @property
    def client(self) -> Address:
        peer = self._raw.transport.get_extra_info("peername") if self._raw.transport else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            return Address(peer[0], peer[1])
        return Address(self._raw.remote, None)

    @property
    def session(self) -> dict[str, Any]:
        """The session of a service with ``SessionMiddleware``: JSON values, kept in a signed cookie."""
        from buildflow.middleware import SESSION_KEY

        session = self._raw.get(SESSION_KEY)
        if session is None:
            raise AssertionError("SessionMiddleware must be installed to access request.session")
        return session  # type: ignore[no-any-return]  # the runtime keeps a dict there

    @property
    def state(self) -> SimpleNamespace:
        """Free-form per-request storage shared by dependencies and the handler."""
        if self._state is None:
            self._state = SimpleNamespace()
        return self._state


class Request(_Connection):
    """The current HTTP request."""

    __slots__ = ()

    @property
    def method(self) -> str:
        return self._raw.method

    async def body(self) -> bytes:
        return await self._raw.read()

    async def text(self) -> str:
        return await self._raw.text()

    async def json(self) -> Any:
        return await self._raw.json()

    async def form(self) -> Mapping[str, str | UploadFile]:
        """The form body (urlencoded or multipart), files as ``UploadFile``: a multidict whose
        ``getall(name)`` gives every value of a repeated field."""
        from multidict import MultiDict

        try:
            posted = await self._raw.post()
        except ValueError as e:  # a broken multipart body: the client's fault, as Starlette answers it
            raise HTTPException(400, f"Malformed form body: {e}") from None
        return MultiDict((name, as_upload(value)) for name, value in posted.items())


def as_upload(value: Any) -> Any:
    """An aiohttp ``FileField`` as an ``UploadFile``; any other value as it is."""
    if isinstance(value, str) or not hasattr(value, "file"):
        return value
    return UploadFile(value.file, filename=value.filename, content_type=value.content_type, headers=value.headers)


class WebSocket(_Connection):
    """The current WebSocket connection; call ``await accept()`` first."""

    __slots__ = ("_ws",)

    def __init__(self, raw: web.Request, ws: web.WebSocketResponse) -> None:
        super().__init__(raw)
        self._ws = ws

    async def accept(self, subprotocol: str | None = None) -> None:
        if subprotocol is not None:
            self._ws._protocols = (subprotocol,)
        await self._ws.prepare(self._raw)

    async def _receive(self) -> Any:
        msg = await self._ws.receive()
        kind = int(msg.type)
        if kind in (0x8, 0x100, 0x101, 0x102):  # CLOSE, CLOSING, CLOSED, ERROR
            raise WebSocketDisconnect(self._ws.close_code or 1000)
        return msg.data

    async def receive_text(self) -> str:
        data = await self._receive()
        return data if isinstance(data, str) else data.decode()

    async def receive_bytes(self) -> bytes:
        data = await self._receive()
        return data if isinstance(data, bytes) else data.encode()

    async def receive_json(self) -> Any:
        import json

        return json.loads(await self.receive_text())

    async def send_text(self, data: str) -> None:
        await self._ws.send_str(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def send_json(self, data: Any) -> None:
        await self._ws.send_json(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._ws.close(code=code, message=reason.encode())

    async def iter_text(self) -> AsyncIterator[str]:
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            return

    @property
    def closed(self) -> bool:
        return self._ws.closed


__all__ = ["Address", "File", "Form", "Request", "UploadFile", "WebSocket"]
