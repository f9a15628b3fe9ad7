"""Request and WebSocket objects handed to handlers and dependencies that ask for them.

They follow the Starlette names BuildFlow users know (``headers``, ``query_params``,
``path_params``, ``url.path``, ``await body()``) over the server's own request object, which
stays reachable as ``.raw`` for full control. Built only for handlers that declare them.

A parameter annotated with Starlette's or FastAPI's ``Request``, ``HTTPConnection`` or
``WebSocket`` (what BuildFlow's users wrote: its endpoints ran on Starlette) gets these same
objects; the runtime knows those classes by name, so neither library is needed.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from multidict import CIMultiDictProxy, MultiDict, MultiDictProxy

from buildflow.exceptions import HTTPException, WebSocketDisconnect
from buildflow.uploads import File, Form, UploadFile

if TYPE_CHECKING:
    from aiohttp import web
    from yarl import URL as YarlURL


class Address(NamedTuple):
    host: str | None
    port: int | None


class _GetList:
    """Starlette's ``getlist(key)`` beside the multidict's own ``getall``."""

    __slots__ = ()

    def getlist(self, key: str) -> list[Any]:
        """Every value of ``key``, in order; an empty list when there is none."""
        return self.getall(key, [])  # type: ignore[attr-defined,no-any-return]  # the multidict's


class QueryParams(_GetList, MultiDictProxy[str]):
    __slots__ = ()


class Headers(_GetList, CIMultiDictProxy[str]):
    __slots__ = ()


class FormData(_GetList, MultiDict["str | UploadFile"]):
    __slots__ = ()


class URL:
    """A request's URL with Starlette's attribute names: ``query`` is the query string as sent,
    ``port`` only when the URL names one, and it compares equal to its text."""

    __slots__ = ("_url",)

    def __init__(self, url: YarlURL) -> None:
        self._url = url

    @property
    def scheme(self) -> str:
        return self._url.scheme

    @property
    def netloc(self) -> str:
        return self._url.raw_authority

    @property
    def path(self) -> str:
        return self._url.path

    @property
    def query(self) -> str:
        return self._url.raw_query_string

    @property
    def fragment(self) -> str:
        return self._url.fragment

    @property
    def hostname(self) -> str | None:
        return self._url.host

    @property
    def port(self) -> int | None:
        return self._url.explicit_port

    @property
    def username(self) -> str | None:
        return self._url.user

    @property
    def password(self) -> str | None:
        return self._url.password

    @property
    def is_secure(self) -> bool:
        return self._url.scheme in ("https", "wss")

    def replace(self, **parts: Any) -> URL:
        """This URL with some of ``scheme``, ``hostname``, ``port``, ``path``, ``query`` and
        ``fragment`` replaced."""
        url = self._url
        for name, value in parts.items():
            setter = _REPLACERS.get(name)
            if setter is None:
                raise TypeError(f"URL.replace() got an unexpected part {name!r}; valid: {', '.join(_REPLACERS)}")
            url = setter(url, value)
        return URL(url)

    def include_query_params(self, **params: Any) -> URL:
        return URL(self._url.update_query({k: str(v) for k, v in params.items()}))

    def __str__(self) -> str:
        return str(self._url)

    def __repr__(self) -> str:
        return f"URL({str(self._url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (str, URL)) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


_REPLACERS: dict[str, Callable[[YarlURL, Any], YarlURL]] = {
    "scheme": lambda url, v: url.with_scheme(v),
    "hostname": lambda url, v: url.with_host(v),
    "port": lambda url, v: url.with_port(v),
    "path": lambda url, v: url.with_path(v, keep_query=True, keep_fragment=True),
    "query": lambda url, v: url.with_query(v or None),
    "fragment": lambda url, v: url.with_fragment(v or None),
}


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
        return URL(self._raw.url)

    @property
    def base_url(self) -> URL:
        """The server's root (``http://host:port/``): where links to other routes start."""
        return URL(self._raw.url.origin().with_path("/"))

    @property
    def headers(self) -> Headers:
        return Headers(self._raw.headers)

    @property
    def query_params(self) -> QueryParams:
        return QueryParams(self._raw.query)  # type: ignore[arg-type]  # yarl's query is a MultiDictProxy

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
        import json

        try:
            return json.loads(await self._raw.read())
        except ValueError as e:  # the client's fault: not a 500
            raise HTTPException(400, f"Malformed JSON body: {e}") from None

    async def form(self) -> FormData:
        """The form body (urlencoded or multipart), files as ``UploadFile``: a multidict whose
        ``getlist(name)`` (or ``getall``) gives every value of a repeated field."""
        try:
            posted = await self._raw.post()
        except ValueError as e:  # a broken multipart body: the client's fault, as Starlette answers it
            raise HTTPException(400, f"Malformed form body: {e}") from None
        return FormData((name, as_upload(value)) for name, value in posted.items())


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
            raise _disconnected(self._ws.close_code or 1000)
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

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._ws.close(code=code, message=(reason or "").encode())

    def iter_text(self) -> AsyncIterator[str]:
        return _until_disconnected(self.receive_text)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        return _until_disconnected(self.receive_bytes)

    def iter_json(self) -> AsyncIterator[Any]:
        return _until_disconnected(self.receive_json)

    @property
    def closed(self) -> bool:
        return self._ws.closed


T = TypeVar("T")


async def _until_disconnected(receive: Callable[[], Awaitable[T]]) -> AsyncIterator[T]:
    """Each message ``receive`` gives, until the peer closes."""
    try:
        while True:
            yield await receive()
    except WebSocketDisconnect:
        return


def _disconnected(code: int) -> WebSocketDisconnect:
    """Ours, and Starlette's too once anything imported Starlette: BuildFlow exported no
    ``WebSocketDisconnect``, so its users catch FastAPI's or Starlette's."""
    starlette = sys.modules.get("starlette.websockets")
    theirs = getattr(starlette, "WebSocketDisconnect", None)
    return (WebSocketDisconnect if theirs is None else _as_theirs_too(theirs))(code)


@functools.cache
def _as_theirs_too(theirs: type[Exception]) -> type[WebSocketDisconnect]:
    return type("WebSocketDisconnect", (WebSocketDisconnect, theirs), {})


__all__ = [
    "URL",
    "Address",
    "File",
    "Form",
    "FormData",
    "Headers",
    "QueryParams",
    "Request",
    "UploadFile",
    "WebSocket",
]
