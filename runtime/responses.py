"""Turning what a handler returned, or raised, into an HTTP response."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from bfctl.runtime.cloud_logging import current_request_id
from buildflow.responses import FileResponse, StreamingResponse
from buildflow.responses import Response as SDKResponse

log = logging.getLogger("buildflow.runtime")

JSON = "application/json"
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_PLAIN_JSON = frozenset({str, int, float, bool, type(None)})


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    to_json = getattr(obj, "to_json", None)
    if to_json is not None:
        return to_json()
    if hasattr(obj, "dict") and hasattr(obj, "__fields__"):  # pydantic v1
        return obj.dict()
    raise TypeError(f"cannot send a {type(obj).__name__} as JSON")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(value), status=status, content_type=JSON, headers=headers)


def render(result: Any) -> web.StreamResponse:
    """BuildFlow's (FastAPI's) rules: data as JSON (``None`` is ``null``), bytes as-is."""
    if type(result) in _PLAIN_JSON:
        return web.Response(body=orjson.dumps(result, option=_OPTIONS), content_type=JSON)
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, SDKResponse):
        return _sdk_response(result)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return web.Response(body=bytes(result), content_type="application/octet-stream")
    try:
        body = dumps(result)
    except TypeError:  # not data: Starlette's response, or nothing that can be sent
        sent = _starlette_response(result)
        if sent is None:
            raise
        return sent
    return web.Response(body=body, content_type=JSON)


_UNAVAILABLE_LIBRARIES = frozenset({"sqlalchemy", "psycopg", "asyncpg", "pg8000"})
_UNAVAILABLE_NAMES = frozenset(
    {
        "OperationalError",
        "InterfaceError",
        "DisconnectionError",
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "TooManyConnectionsError",
        "TimeoutError",  # SQLAlchemy's: no pooled connection came free in time
    }
)
#: SQLSTATEs of a database that cannot take a connection now, whatever class the driver raises them
#: as (pg8000 and SQLAlchemy's asyncpg adapter do not say OperationalError): too many connections
#: ("remaining connection slots are reserved"), starting up or shutting down, and class 08.
_UNAVAILABLE_SQLSTATES = ("53300", "57P03", "08")


def _sqlstate(exc: BaseException) -> str | None:
    error = getattr(exc, "orig", None) or exc  # SQLAlchemy's error wraps the driver's
    state = getattr(error, "sqlstate", None)
    if state is None and error.args and isinstance(error.args[0], dict):  # pg8000: the server's fields
        state = error.args[0].get("C")
    return state if isinstance(state, str) else None


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says a backing service (a database, mostly) cannot be reached now."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if any(
        cls.__name__ in _UNAVAILABLE_NAMES and cls.__module__.partition(".")[0] in _UNAVAILABLE_LIBRARIES
        for cls in type(exc).__mro__
    ):
        return True
    state = _sqlstate(exc)
    return state is not None and state.startswith(_UNAVAILABLE_SQLSTATES)


def unavailable(raw: Any, where: str, exc: BaseException) -> web.Response:
    """503 with ``Retry-After``: the request was fine, a service behind it was not."""
    log.warning(
        "%s %s: %s could not reach a backing service: %s",
        raw.method,
        raw.path,
        where,
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
    )
    return json_response(
        {"detail": "A service this request needs is unavailable; retry later"}, 503, {"Retry-After": "1"}
    )


def _sdk_response(result: SDKResponse) -> web.StreamResponse:
    response: web.StreamResponse
    if isinstance(result, FileResponse):
        response = web.FileResponse(result.path, status=result.status_code, headers=result.headers)
        if result.media_type:
            response.content_type = result.media_type
    else:
        body: Any = result.body
        if isinstance(result, StreamingResponse):
            body = _chunks(result.body_iterator)
        response = web.Response(
            body=body, status=result.status_code, headers=result.headers, content_type=result.media_type
        )
    for cookie in result.cookies:
        response.headers.add("Set-Cookie", cookie)
    return response


#: The names of Starlette's response classes each returned class is (FastAPI's are Starlette's),
#: read once per class.
_STARLETTE_KINDS: dict[type, frozenset[str]] = {}


def _starlette_kinds(cls: type) -> frozenset[str]:
    kinds = _STARLETTE_KINDS.get(cls)
    if kinds is None:
        kinds = frozenset(c.__qualname__ for c in cls.__mro__ if c.__module__ == "starlette.responses")
        _STARLETTE_KINDS[cls] = kinds
    return kinds


def _starlette_response(result: Any) -> web.StreamResponse | None:
    """A Starlette (or FastAPI) response a handler returned, as BuildFlow flows did since its
    ``buildflow.responses`` were Starlette's: its status, headers (cookies too) and body. Known by
    name, so Starlette is never imported."""
    kinds = _starlette_kinds(type(result))
    if "Response" not in kinds:
        return None
    if result.background is not None:
        raise TypeError("a response with background tasks: bfctl does not run them; do the work in the handler")
    headers = CIMultiDict((name.decode("latin-1"), value.decode("latin-1")) for name, value in result.raw_headers)
    headers.popall("content-length", None)  # the server counts what it sends
    if "FileResponse" in kinds:
        return web.FileResponse(result.path, status=result.status_code, headers=headers)
    body = _chunks(result.body_iterator) if "StreamingResponse" in kinds else result.body
    return web.Response(body=body, status=result.status_code, headers=headers)


_DONE = object()


async def _chunks(iterator: Any) -> Any:
    """Async bytes from a sync or async iterator of bytes or str. A sync one is advanced in a
    thread, as Starlette does: it may block (a model generating text, a file being read)."""
    if hasattr(iterator, "__aiter__"):
        async for chunk in iterator:
            yield chunk.encode() if isinstance(chunk, str) else chunk
        return
    loop = asyncio.get_running_loop()
    items = iter(iterator)
    while (chunk := await loop.run_in_executor(None, next, items, _DONE)) is not _DONE:
        yield chunk.encode() if isinstance(chunk, str) else chunk


#: Headers of an aiohttp HTTP error that describe its own plain-text body.
_BODY_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding")


def http_error(exc: web.HTTPException) -> web.Response:
    """An aiohttp HTTP error (a 413 from reading a body over the limit, say) answered with its
    own status and headers (``Allow``, ``Location``...), its text as the JSON ``detail``."""
    headers = exc.headers.copy()
    for name in _BODY_HEADERS:
        headers.popall(name, None)
    if exc.empty_body:  # 204, 304: no body at all
        return web.Response(status=exc.status, reason=exc.reason, headers=headers)
    detail = exc.text if exc.text is not None else exc.reason
    return web.Response(
        body=dumps({"detail": detail}), status=exc.status, reason=exc.reason, content_type=JSON, headers=headers
    )


def starlette_http_error(exc: BaseException) -> web.Response | None:
    """Starlette's ``HTTPException`` (FastAPI's is a subclass) answered as ours is: BuildFlow's
    ``buildflow.exceptions.HTTPException`` was Starlette's, so flows raise it imported from either.
    Known by name (Starlette is never imported); read only for errors nothing else claimed."""
    if not any((c.__module__, c.__qualname__) == ("starlette.exceptions", "HTTPException") for c in type(exc).__mro__):
        return None
    return json_response({"detail": exc.detail}, exc.status_code, dict(exc.headers or {}))  # type: ignore[attr-defined]


def server_error(raw: Any, where: str, exc: BaseException) -> web.Response:
    """A 500 that names a request id; the traceback goes to the log under the same id."""
    request_id = current_request_id() or raw.headers.get("X-Request-ID") or uuid.uuid4().hex
    log.error("request %s: %s %s failed in %s", request_id, raw.method, raw.path, where, exc_info=exc)
    return json_response(
        {"detail": "Internal Server Error", "request_id": request_id},
        status=500,
        headers={"X-Request-ID": request_id},
    )
