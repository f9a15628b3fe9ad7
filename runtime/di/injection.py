"""What a parameter annotation asks for: a dependency, the request, or data from the client.

Start-up only: this is the reflection the request path never does.
"""

from __future__ import annotations

import enum
import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any

from bfctl.runtime.errors import StartupError
from buildflow.dependencies.scopes import scope_of
from buildflow.requests import Request, WebSocket
from buildflow.types.fields import parse_type


class Source(enum.Enum):
    """Per-request objects a handler or dependency can ask for."""

    REQUEST = "request"  # buildflow.requests.Request
    RAW_REQUEST = "raw_request"  # aiohttp.web.Request
    WEBSOCKET = "websocket"  # buildflow.requests.WebSocket


def _raw_request_type() -> type:
    from aiohttp import web

    return web.Request


#: Starlette's classes (FastAPI re-exports them) by module and name: BuildFlow's endpoints ran
#: on Starlette, so its users annotate with them. Known by name, so neither library is imported.
_STARLETTE: dict[tuple[str, str], Source] = {
    ("starlette.requests", "Request"): Source.REQUEST,
    ("starlette.requests", "HTTPConnection"): Source.REQUEST,  # a websocket's handshake request
    ("starlette.websockets", "WebSocket"): Source.WEBSOCKET,
}


def request_source(annotation: Any) -> Source | None:
    if annotation is Request:
        return Source.REQUEST
    if annotation is WebSocket:
        return Source.WEBSOCKET
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, _raw_request_type()):
        return Source.RAW_REQUEST
    return _STARLETTE.get((annotation.__module__, annotation.__qualname__))


def _is_plain_class(obj: Any) -> bool:
    return (
        isinstance(obj, type)
        and obj.__module__.partition(".")[0] not in sys.stdlib_module_names
        and not parse_type(obj).is_data
        and request_source(obj) is None
        and not issubclass(obj, BaseException)
    )


def dependency_target(annotation: Any) -> Any | None:
    """The injectable an annotation names, or None.

    Marked classes and functions, plain classes (default scope) and ``Annotated[T, dep]``.
    """
    metadata = parse_type(annotation).metadata
    if metadata:
        for meta in metadata:
            if scope_of(meta) is not None or inspect.isfunction(meta) or _is_plain_class(meta):
                return meta
        return None
    if scope_of(annotation) is not None:
        return annotation
    if inspect.isfunction(annotation) or _is_plain_class(annotation):
        return annotation
    return None


def describe(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)


def signature_of(target: Callable[..., Any], owner: str) -> list[tuple[inspect.Parameter, Any]]:
    """Parameters with their evaluated annotations (string annotations resolved)."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError) as e:
        raise StartupError(f"{owner}: cannot read its signature ({e})") from None
    if isinstance(target, type):
        cls: type[Any] = target
        hint_source: Any = cls.__init__
    else:
        hint_source = target
    try:
        hints = typing.get_type_hints(hint_source, include_extras=True)
    except Exception as e:  # NameError for an undefined forward reference, mostly
        raise StartupError(f"{owner}: cannot resolve its type annotations: {e}") from None
    params = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        params.append((p, hints.get(p.name, p.annotation)))
    return params


__all__ = ["Source", "dependency_target", "describe", "request_source", "signature_of"]
