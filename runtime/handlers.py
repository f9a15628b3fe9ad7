"""One endpoint or collector compiled into an aiohttp handler.

Everything that needs reflection happens in ``__init__`` (start-up) and ``start`` (worker
start); ``handle`` is the per-request path: parse, resolve, call, render.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from aiohttp import web

from bfctl.runtime.batching import QueueFull, SinkUnavailable
from bfctl.runtime.bodies import client_fault
from bfctl.runtime.collectors import CollectorOutput
from bfctl.runtime.di.context import RequestContext
from bfctl.runtime.di.dispatch import DispatcherResults
from bfctl.runtime.di.graph import Arg, Graph
from bfctl.runtime.di.injection import Source, dependency_target, describe, request_source, signature_of
from bfctl.runtime.di.resolver import Invoke, RequestPlan, not_started
from bfctl.runtime.errors import ClientError, StartupError
from bfctl.runtime.params import Params, is_upload
from bfctl.runtime.responses import (
    http_error,
    is_unavailable,
    json_response,
    render,
    server_error,
    starlette_http_error,
    unavailable,
)
from bfctl.runtime.sinks.base import RowsRejected
from bfctl.runtime.sinks.registry import SinkRegistry
from buildflow.dependencies.scopes import Scope
from buildflow.exceptions import HTTPException, WebSocketDisconnect
from buildflow.pipedream import Dispatcher
from buildflow.processors import Collector
from buildflow.requests import WebSocket
from buildflow.types.fields import parse_type
from buildflow.types.schema import RowConversionError
from buildflow.uploads import FormParam

_PATH_PARAM = re.compile(r"\{(\w+)(?::[^{}]*)?\}")
_EMPTY: dict[str, Any] = {}


class CompiledHandler:
    def __init__(
        self,
        target: Any,
        route: str,
        method: str,
        graph: Graph,
        *,
        collector: Collector | None = None,
        sinks: SinkRegistry | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.target = target
        self.route = route
        self.method = method
        self.is_websocket = method == "WEBSOCKET"
        self.name = describe(target)
        owner = f"{'collector' if collector else 'endpoint'} `{self.name}` ({method} {route})"
        self.is_collector = collector is not None
        #: The service's declared middleware (``buildflow.middleware``), applied by the app.
        self.middleware: list[Any] = []
        self.is_class, fn = process_fn(target, owner, "processor")
        self.is_async = inspect.iscoroutinefunction(fn)
        if self.is_websocket and not self.is_async:
            raise StartupError(f"{owner}: websocket endpoints must be `async def`")
        self.params = Params()
        self.fn = fn
        self.output: CollectorOutput | None = None
        if collector is not None:
            assert sinks is not None, "a collector needs the sink registry"
            self.output = CollectorOutput(sinks, collector.sink_primitive, fn, collector.batch_options)
        args: list[Arg] = []
        path_names = set(_PATH_PARAM.findall(route))
        results = DispatcherResults(dispatcher, graph, owner) if dispatcher is not None else None
        wanted: list[str] = []  # parameters the dispatcher builds
        signature = signature_of(fn, owner)
        for param, annotation in signature[1:] if self.is_class else signature:
            args.extend(self._classify(param, annotation, path_names, graph, owner, results, wanted))
        if self.params.body and self.params.form:
            raise StartupError(
                f"{owner}: one request cannot carry both a JSON body ({', '.join(n for n, *_ in self.params.body)}) "
                f"and a form ({', '.join(f.param for f in self.params.form)}); send the JSON as a form field, or "
                "the files in another request"
            )
        if results is not None:
            results.given = self.params.names()
            args.extend((name, results.node(name)) for name in wanted)
        self.plan = RequestPlan(args, self.is_async)
        self.needs_context = self.plan.has_dependencies or any(isinstance(a, Source) for _, a in args)
        self._instance: Any = None
        self.takes_input = not self.params.empty  # per request: one attribute, not four lists
        self._invoke: Invoke = not_started

    def _classify(
        self,
        param: inspect.Parameter,
        annotation: Any,
        path_names: set[str],
        graph: Graph,
        owner: str,
        results: DispatcherResults | None,
        wanted: list[str],
    ) -> list[Arg]:
        name, default = param.name, param.default
        source = request_source(annotation)
        if source is not None:
            return [(name, source)]
        if isinstance(default, FormParam) or is_upload(annotation):
            self._add_form(name, annotation, default if isinstance(default, FormParam) else None, owner)
            return []
        node = parse_type(str if annotation is inspect.Parameter.empty else annotation)
        if name in path_names:
            if not node.is_text:
                raise StartupError(f"{owner}: path parameter `{name}` must be str, int, float, bool or UUID")
            self.params.add_path(name, annotation)
            return []
        target = dependency_target(annotation)
        if target is not None:
            return [(name, graph.require(target, owner, Scope.PROCESS))]
        if results is not None and results.provides(name):
            if annotation is inspect.Parameter.empty:
                wanted.append(name)
                return []
            if node.is_body or default is not inspect.Parameter.empty:
                kind = "the JSON body" if node.is_body else "a query parameter with a default"
                raise StartupError(
                    f"{owner}: parameter `{name}` is both a dispatcher result and {kind}, so whether the "
                    "dispatcher's function runs would depend on each request; leave the parameter "
                    "unannotated to take the dispatcher's result, or declare it a query parameter with a "
                    "type and no default to always take the request's value"
                )
        if self.is_websocket and node.is_body:
            raise StartupError(f"{owner}: websocket endpoints read messages, not a body (`{name}`)")
        if node.is_body:
            self.params.add_body(name, annotation, default)
        elif node.is_text or node.text_items:
            self.params.add_query(name, annotation, default)
        else:
            raise StartupError(
                f"{owner}: parameter `{name}` has annotation {annotation!r}, which is neither a "
                "dependency, a request, a path or query value, nor a JSON body type"
            )
        return []

    def _add_form(self, name: str, annotation: Any, declared: FormParam | None, owner: str) -> None:
        if self.is_websocket:
            raise StartupError(f"{owner}: websocket endpoints read messages, not a form (`{name}`)")
        if declared is not None and declared.unsupported:
            raise StartupError(
                f"{owner}: parameter `{name}`: bfctl does not apply the form options "
                f"{', '.join(declared.unsupported)}; check the value in the handler instead"
            )
        try:
            self.params.add_form(name, annotation, declared)
        except TypeError as e:
            raise StartupError(f"{owner}: parameter `{name}`: {e}") from None

    # -- worker life --------------------------------------------------------------------------
    async def start(self, loop: asyncio.AbstractEventLoop, pool: Executor) -> None:
        """Build a class-based processor, run its ``setup()``, and pick the request path."""
        fn = self.target
        if self.is_class:
            self._instance = await built(self.target, loop, pool)
            fn = self._instance.process
        self.plan.finalize(fn)
        if self.output is not None:
            self.output.start()
        self._invoke = self.plan.invoker(loop, pool, always_plan=self.is_websocket)

    async def stop(self, loop: asyncio.AbstractEventLoop, pool: Executor) -> None:
        await call_hook(getattr(self._instance, "teardown", None), loop, pool)

    # -- per request ---------------------------------------------------------------------------
    async def handle(self, raw: web.Request) -> web.StreamResponse:
        try:
            params = await self.params.parse(raw) if self.takes_input else _EMPTY
            ctx = RequestContext(raw) if self.needs_context else None
            return render(await self._invoke(ctx, params))
        except Exception as e:
            return self._error(raw, e)

    async def handle_collector(self, raw: web.Request) -> web.StreamResponse:
        try:
            params = await self.params.parse(raw) if self.takes_input else _EMPTY
            ctx = RequestContext(raw) if self.needs_context else None
            output = self.output
            assert output is not None  # the collector route is added for collectors only
            return await output.deliver(await self._invoke(ctx, params))
        except Exception as e:
            return self._error(raw, e)

    def _error(self, raw: web.Request, e: Exception) -> web.StreamResponse:
        if isinstance(e, HTTPException):
            return json_response({"detail": e.detail}, e.status_code, e.headers)
        if isinstance(e, ClientError):
            return json_response(e.body, e.status, e.headers)
        if isinstance(e, web.HTTPException):  # aiohttp's own, e.g. 413 from reading the body
            return http_error(e)
        if (fault := client_fault(raw, e)) is not None:
            return json_response(fault.body, fault.status)
        # rows for a sink, from a collector or a SinkDependencyBuilder dependency
        if isinstance(e, RowConversionError):
            return json_response({"detail": f"row does not fit the sink: {e}"}, 422)
        if isinstance(e, RowsRejected):
            return json_response({"detail": f"rows refused by the sink: {e}"}, 422)
        if isinstance(e, (QueueFull, SinkUnavailable)):
            return json_response(
                {"detail": "The sink cannot take rows right now; retry later"}, 503, {"Retry-After": "1"}
            )
        if is_unavailable(e):
            return unavailable(raw, self.name, e)
        return starlette_http_error(e) or server_error(raw, self.name, e)

    async def handle_websocket(self, raw: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        ctx = RequestContext(raw, WebSocket(raw, ws))
        try:
            params = await self.params.parse(raw) if self.takes_input else _EMPTY
            await self._invoke(ctx, params)
        except WebSocketDisconnect:
            pass
        except (HTTPException, ClientError) as e:
            if not ws.prepared:
                status, body = (
                    (e.status_code, {"detail": e.detail}) if isinstance(e, HTTPException) else (e.status, e.body)
                )
                return json_response(body, status)
            await ws.close(code=1008)
        except Exception as e:
            if not ws.prepared:
                return http_error(e) if isinstance(e, web.HTTPException) else server_error(raw, self.name, e)
            server_error(raw, self.name, e)
            await ws.close(code=1011)
        if not ws.prepared:
            return json_response({"detail": "WebSocket closed before it was accepted"}, 403)
        if not ws.closed:
            await ws.close()
        return ws


def process_fn(target: Any, owner: str, kind: str) -> tuple[bool, Callable[..., Any]]:
    """Whether ``target`` is a class-based processor, and the function that handles its input
    (the class's ``process``)."""
    is_class = inspect.isclass(target)
    if is_class and not callable(getattr(target, "process", None)):
        raise StartupError(f"{owner}: a class-based {kind} needs a `process` method")
    return is_class, target.process if is_class else target


async def built(target: type, loop: asyncio.AbstractEventLoop, pool: Executor) -> Any:
    """A class-based processor's instance for this worker, its ``setup()`` run."""
    instance = target()
    await call_hook(getattr(instance, "setup", None), loop, pool)
    return instance


async def call_hook(fn: Callable[[], Any] | None, loop: asyncio.AbstractEventLoop, pool: Executor) -> Any:
    """A class processor's `setup()` or `teardown()`, if it has one: awaited, or run in the thread pool."""
    if fn is None:
        return None
    if inspect.iscoroutinefunction(fn):
        return await fn()
    return await loop.run_in_executor(pool, fn)
