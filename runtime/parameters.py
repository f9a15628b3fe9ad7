"""What each parameter of a handler, consumer, dependency or dispatcher function is.

A callable's parameters are read once, at start-up, into a small closed set of kinds
(:class:`Kind`); endpoints, collectors, consumers, dependencies and dispatcher functions then
only accept or refuse kinds, so what a parameter means is decided here and nowhere else. This
is the reflection the request path never does.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import sys
import typing
from collections.abc import Callable, Collection
from typing import Any

from bfctl.runtime.conversion import reads_bytes
from bfctl.runtime.errors import StartupError
from bfctl.runtime.params import is_upload
from buildflow.dependencies.scopes import scope_of
from buildflow.requests import Request, WebSocket
from buildflow.types.fields import TypeNode, parse_type
from buildflow.uploads import FormParam

_EMPTY = inspect.Parameter.empty
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


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
    """A class's or function's name; an object with ``__call__`` is named by its class."""
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__qualname__


def signature_of(target: Callable[..., Any], owner: str) -> list[tuple[inspect.Parameter, Any]]:
    """Parameters with their evaluated annotations (string annotations resolved)."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError) as e:
        raise StartupError(f"{owner}: cannot read its signature ({e})") from None
    hint_source: Any = target
    if isinstance(target, type):
        cls: type[Any] = target
        hint_source = cls.__init__
    elif not inspect.isroutine(target):  # an object with ``__call__``: its method's annotations
        hint_source = type(target).__call__
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


class Kind(enum.Enum):
    """What a parameter is; each kind of processor accepts some kinds and refuses the others."""

    REQUEST = "the request"  # ``source`` says which object
    DEPENDENCY = "a typed dependency"  # ``target`` is the injectable
    RESULT = "a dispatcher result"  # unannotated, named like one of the dispatcher's functions
    PATH = "a path value"  # named in the route
    FORM = "a form field or upload"  # ``File()``/``Form()`` default or an ``UploadFile`` annotation
    BODY = "the JSON body"  # a dataclass, model, dict, list...
    QUERY = "a query value"  # text, or a list of text
    MESSAGE = "the message"  # a consumer's input
    OTHER = "nothing a request carries"  # a type no request value is read into


@dataclasses.dataclass(frozen=True)
class Parameter:
    name: str
    kind: Kind
    annotation: Any  # ``inspect.Parameter.empty`` when there is none
    default: Any  # ``inspect.Parameter.empty`` when the parameter is required
    positional: bool
    source: Source | None = None
    target: Any = None
    #: The parsed annotation (``str`` when there is none) of a value read from the request.
    node: TypeNode | None = None

    @property
    def form(self) -> FormParam | None:
        """The declared ``File()``/``Form()`` of a FORM parameter."""
        return self.default if isinstance(self.default, FormParam) else None


def parameters(
    fn: Callable[..., Any],
    owner: str,
    *,
    method: bool = False,
    path: Collection[str] = (),
    results: Callable[[str], bool] | None = None,
    messages: bool = False,
) -> list[Parameter]:
    """The parameters of ``fn`` (without ``self`` when it is a ``method`` read from its class), by kind.

    ``path`` names the route's values; ``results`` says whether the dispatcher has a function of
    a name; with ``messages`` the data a parameter is read into is a consumer's message (a message
    type, e.g. one with ``from_bytes``, is then never a dependency).
    """
    signature = signature_of(fn, owner)
    return [_parameter(p, a, path, results, messages) for p, a in (signature[1:] if method else signature)]


def _parameter(
    param: inspect.Parameter,
    annotation: Any,
    path: Collection[str],
    results: Callable[[str], bool] | None,
    messages: bool,
) -> Parameter:
    name, default = param.name, param.default

    def of(kind: Kind, **found: Any) -> Parameter:
        return Parameter(name, kind, annotation, default, param.kind in _POSITIONAL, **found)

    source = request_source(annotation)
    if source is not None:
        return of(Kind.REQUEST, source=source)
    if not messages and (isinstance(default, FormParam) or is_upload(annotation)):
        return of(Kind.FORM)
    if name in path:
        return of(Kind.PATH, node=_node(annotation))
    target = None if messages and reads_bytes(annotation) else dependency_target(annotation)
    if target is not None:
        return of(Kind.DEPENDENCY, target=target)
    if annotation is _EMPTY and results is not None and results(name):
        return of(Kind.RESULT)
    if messages:
        return of(Kind.MESSAGE)
    node = _node(annotation)
    if node.is_body:
        return of(Kind.BODY, node=node)
    return of(Kind.QUERY if node.is_text or node.text_items else Kind.OTHER, node=node)


def _node(annotation: Any) -> TypeNode:
    """A request value's parsed type: text when the parameter has no annotation."""
    return parse_type(str if annotation is _EMPTY else annotation)
