"""One endpoint or collector compiled into an aiohttp handler.

Everything that needs reflection happens in ``__init__`` (start-up) and ``start`` (worker
start); ``handle`` is the per-request path: parse, resolve, call, render.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from concurrent.futures import Executor
from typing import Any

from aiohttp import web

from bfctl.runtime.collectors import CollectorOutput
from bfctl.runtime.di.context import RequestContext
from bfctl.runtime.di.dispatch import DispatcherResults
from bfctl.runtime.di.graph import Arg, Graph
from bfctl.runtime.di.resolver import Invoke, RequestPlan, not_started
from bfctl.runtime.errors import ClientError, StartupError
from bfctl.runtime.outcomes import answer
from bfctl.runtime.parameters import Kind, Parameter, Source, describe, parameters
from bfctl.runtime.params import Params
from bfctl.runtime.processors import built, call_hook, process_fn
from bfctl.runtime.responses import http_error, json_response, render, server_error
from bfctl.runtime.sinks.registry import SinkRegistry
from buildflow.dependencies.scopes import Scope
from buildflow.exceptions import HTTPException, WebSocketDisconnect
from buildflow.pipedream import Dispatcher
from buildflow.pipedream.plan import is_async
from buildflow.processors import Collector
from buildflow.requests import WebSocket
from buildflow.uploads import FormParam

_PATH_PARAM = re.compile(r"\{(\w+)(?::[^{}]*)?\}")
_EMPTY: dict[str, Any] = {}
_MISSING = inspect.Parameter.empty


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
        #: The OpenAPI tag of its operation: its service's, or the collectors'.
        self.tag = ""
        self.is_class, fn = process_fn(target, owner, "processor")
        self.is_async = is_async(fn)
        if self.is_websocket and not self.is_async:
            raise StartupError(f"{owner}: websocket endpoints must be `async def`")
        self.params = Params()
        self.fn = fn
        self.output: CollectorOutput | None = None
        if collector is not None:
            assert sinks is not None, "a collector needs the sink registry"
            self.output = CollectorOutput(sinks, collector.sink_primitive, fn, collector.batch_options)
        args: list[Arg] = []
        results = DispatcherResults(dispatcher, graph, owner) if dispatcher is not None else None
        wanted: list[str] = []  # parameters the dispatcher builds
        found = parameters(
            fn,
            owner,
            method=self.is_class,
            path=set(_PATH_PARAM.findall(route)),
            results=results.provides if results is not None else None,
        )
        for param in found:
            args.extend(self._accept(param, graph, owner, results, wanted))
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

    def _accept(
        self, param: Parameter, graph: Graph, owner: str, results: DispatcherResults | None, wanted: list[str]
    ) -> list[Arg]:
        """Where the argument of ``param`` comes from; a type no request value is read into is refused."""
        name, kind = param.name, param.kind
        if kind is Kind.REQUEST:
            assert param.source is not None
            return [(name, param.source)]
        if kind is Kind.DEPENDENCY:
            return [(name, graph.require(param.target, owner, Scope.PROCESS))]
        if kind is Kind.RESULT:
            wanted.append(name)
            return []
        if kind is Kind.FORM:
            self._add_form(name, param.annotation, param.form, owner)
            return []
        node = param.node
        assert node is not None  # read from the request: PATH, BODY, QUERY, OTHER
        if kind is Kind.PATH:
            if not node.is_text:
                raise StartupError(f"{owner}: path parameter `{name}` must be str, int, float, bool or UUID")
            self.params.add_path(name, param.annotation)
            return []
        if results is not None and results.provides(name) and (node.is_body or param.default is not _MISSING):
            what = "the JSON body" if node.is_body else "a query parameter with a default"
            raise StartupError(
                f"{owner}: parameter `{name}` is both a dispatcher result and {what}, so whether the "
                "dispatcher's function runs would depend on each request; leave the parameter "
                "unannotated to take the dispatcher's result, or declare it a query parameter with a "
                "type and no default to always take the request's value"
            )
        if self.is_websocket and kind is Kind.BODY:
            raise StartupError(f"{owner}: websocket endpoints read messages, not a body (`{name}`)")
        if kind is Kind.BODY:
            self.params.add_body(name, param.annotation, param.default)
        elif kind is Kind.QUERY:
            self.params.add_query(name, param.annotation, param.default)
        else:
            raise StartupError(
                f"{owner}: parameter `{name}` has annotation {param.annotation!r}, which is neither a "
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
    async def start(self, loop: asyncio.AbstractEventLoop, pool: Executor, traced: bool = False) -> None:
        """Build a class-based processor, run its ``setup()``, and pick the request path (with
        spans when the worker traces)."""
        fn = self.target
        if self.is_class:
            self._instance = await built(self.target, loop, pool)
            fn = self._instance.process
        self.plan.finalize(fn)
        if self.output is not None:
            self.output.start(traced)
        self._invoke = self.plan.invoker(loop, pool, always_plan=self.is_websocket, traced=traced)

    async def stop(self, loop: asyncio.AbstractEventLoop, pool: Executor) -> None:
        await call_hook(getattr(self._instance, "teardown", None), loop, pool)

    # -- per request ---------------------------------------------------------------------------
    async def handle(self, raw: web.Request) -> web.StreamResponse:
        try:
            params = await self.params.parse(raw) if self.takes_input else _EMPTY
            ctx = RequestContext(raw) if self.needs_context else None
            return render(await self._invoke(ctx, params))
        except Exception as e:
            return answer(raw, self.name, e)

    async def handle_collector(self, raw: web.Request) -> web.StreamResponse:
        try:
            params = await self.params.parse(raw) if self.takes_input else _EMPTY
            ctx = RequestContext(raw) if self.needs_context else None
            output = self.output
            assert output is not None  # the collector route is added for collectors only
            return await output.deliver(await self._invoke(ctx, params))
        except Exception as e:
            return answer(raw, self.name, e)

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
