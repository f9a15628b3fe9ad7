"""A flow compiled into an aiohttp application: routes, health, and worker life."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from bfctl.runtime import bodies, metrics, middleware, openapi
from bfctl.runtime.analysis import RuntimeQueryOpener
from bfctl.runtime.buckets import RuntimeBucketOpener
from bfctl.runtime.cloud_logging import ContextThreadPool
from bfctl.runtime.consumers import CompiledConsumer
from bfctl.runtime.di.graph import Graph, Node, walk
from bfctl.runtime.di.lifecycle import Lifecycle
from bfctl.runtime.errors import StartupError
from bfctl.runtime.handlers import CompiledHandler
from bfctl.runtime.openapi import COLLECTORS_TAG, OPENAPI_ROUTE
from bfctl.runtime.pull_loops import ConsumerGroup
from bfctl.runtime.responses import JSON, dumps, json_response
from bfctl.runtime.sinks.registry import RegistryPushers, SinkRegistry
from bfctl.runtime.tracing.worker import TRACING, WorkerTracing
from bfctl.runtime.unsupported import refuse_unsupported
from buildflow.dependencies.analysis import QueryOpener
from buildflow.dependencies.bucket import BucketOpener
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.dependencies.scopes import Scope
from buildflow.dependencies.sink import SinkPushers
from buildflow.deployed import HEALTH_PATH
from buildflow.exceptions import DependencyError
from buildflow.flow import Flow
from buildflow.pipedream import Dispatcher
from buildflow.processors import Collector, Method, join_route

#: Request bodies above this size are answered with 413.
DEFAULT_MAX_BODY = 10 * 1024 * 1024


def default_thread_count() -> int:
    """Python's own default: more threads than this only add GIL contention for short sync
    handlers; raise it (``bfctl serve --threads``) when handlers mostly wait on I/O."""
    return min(32, (os.cpu_count() or 1) + 4)


class FlowApp:
    """The compiled flow. Building it validates everything; serving needs no more checks."""

    def __init__(
        self,
        flow: Flow,
        overrides: Mapping[Any, Any] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        outputs: ResourceOutputs | None = None,
        threads: int | None = None,
    ) -> None:
        self.flow = flow
        #: Whether each worker serves the dashboard under /_bf/ (``dashboard.policy`` decides).
        self.dashboard = False
        #: A worker built in another process was forked, one of several (a single one is not).
        self._compiled_in = os.getpid()
        self.max_body = max_body
        self.threads = threads or default_thread_count()
        project_dir = Path.cwd()
        self.outputs = applied = outputs or ResourceOutputs()
        self.sinks = SinkRegistry(applied, project_dir)
        provided: dict[Any, Any] = {
            SinkPushers: RegistryPushers(self.sinks),
            BucketOpener: RuntimeBucketOpener(applied),
            QueryOpener: RuntimeQueryOpener(applied, project_dir),
        }
        if outputs is not None:
            provided[ResourceOutputs] = outputs
        graph = Graph({**provided, **flow.dependency_overrides, **(overrides or {})})
        try:
            self.handlers = self._compile(flow, graph, self.sinks)
            consumers = [CompiledConsumer(c, graph, self.sinks, flow.dispatcher) for c in flow.consumers]
        except DependencyError as e:
            raise StartupError(str(e)) from None
        self.consumers = ConsumerGroup(consumers, applied, project_dir)
        roots: list[Node] = []
        for plan in [*(h.plan for h in self.handlers), *(c.plan for c in consumers)]:
            for step in (*plan.steps, plan.handler):
                roots.extend(arg for _, arg in step.args if isinstance(arg, Node))
        self.lifecycle = Lifecycle(roots)
        self.api_info = openapi.api_info(flow.flow_id, project_dir)
        #: OpenAPI tag -> description: a tag per service, in declaration order, then the collectors'.
        self.tags = dict(openapi.service_tag(s) for s in flow.services)
        self.tags[COLLECTORS_TAG] = "Collectors: HTTP in, rows out to their sinks"
        # found here so that a missing swagger-ui-py fails the build, not each worker
        self.docs_pages = openapi.docs_pages(self.api_info.title, {r for _, r in self.routes()})
        #: Every dependency the handlers and consumers need (bfctl reads the primitives they use).
        self.nodes = nodes = walk(roots)
        refuse_unsupported(flow, nodes)
        self.sinks.declare_dependencies(nodes)
        self.serve_metrics = metrics.served(os.environ)
        self.pool: ThreadPoolExecutor | None = None
        #: What runs sync code; the server swaps in one that carries each request's log context.
        self.pool_class: type[ThreadPoolExecutor] = ThreadPoolExecutor

    @staticmethod
    def _compile(flow: Flow, graph: Graph, sinks: SinkRegistry) -> list[CompiledHandler]:
        handlers: list[CompiledHandler] = []
        seen: dict[tuple[str, str], str] = {}
        declared: list[tuple[str, Method, Any, Collector | None, list[Any], Dispatcher | None, str]] = [
            (
                join_route(s.base_route, e.route),
                e.method,
                e.original_process_fn_or_class,
                None,
                s.middleware,
                s.dispatcher or flow.dispatcher,
                openapi.service_tag(s)[0],
            )
            for s in flow.services
            for e in s.endpoints
        ]
        declared += [
            (c.route, c.method, c.original_process_fn_or_class, c, [], flow.dispatcher, COLLECTORS_TAG)
            for c in flow.collectors
        ]
        for route, method, target, collector, wrappers, dispatcher, tag in declared:
            key = (route, "GET" if method is Method.WEBSOCKET else method.value)
            handler = CompiledHandler(
                target, route, method.value, graph, collector=collector, sinks=sinks, dispatcher=dispatcher
            )
            handler.middleware = wrappers
            handler.tag = tag
            if key in seen:
                raise StartupError(f"{key[1]} {route} is declared twice: by `{seen[key]}` and by `{handler.name}`")
            seen[key] = handler.name
            handlers.append(handler)
        return handlers

    def routes(self) -> list[tuple[str, str]]:
        return [(h.method, h.route) for h in self.handlers]

    def workers_wanted(self) -> int:
        """``num_replicas`` declared in the flow: the default worker count."""
        counts = [s.num_replicas for s in self.flow.services]
        counts += [c.processor_options.num_replicas for c in self.flow.collectors]
        counts += [c.processor_options.num_replicas for c in self.flow.consumers]
        return max(counts, default=1)

    def build(self) -> web.Application:
        """A fresh aiohttp application (one per worker process)."""
        app = web.Application(
            client_max_size=self.max_body,
            handler_args={"max_line_size": 65536, "max_field_size": 65536, "auto_decompress": bodies.AUTO_DECOMPRESS},
        )
        preflights: dict[str, Any] = {}
        app[TRACING] = tracing = WorkerTracing()
        routes: list[metrics.RouteStats] = []
        for handler in self.handlers:
            if handler.is_websocket:
                app.router.add_route("GET", handler.route, handler.handle_websocket)
                continue
            handle: middleware.Handler = handler.handle_collector if handler.is_collector else handler.handle
            if handler.middleware:
                handle, cors = middleware.apply(handler.middleware, handle)
                if cors is not None:
                    preflights.setdefault(handler.route, cors.preflight)
            routes.append(metrics.RouteStats(handler.method, handler.route))
            kind = "batch" if handler.is_collector else "request"
            handle = tracing.entry(handle, handler.method, handler.route, kind)
            app.router.add_route(handler.method, handler.route, metrics.timed(handle, routes[-1]))
        for route, preflight in preflights.items():
            app.router.add_route("OPTIONS", route, preflight)
        app.router.add_get(HEALTH_PATH, _health)
        self._add_docs(app)
        unmatched = metrics.RouteStats("*", "(unmatched)")
        worker = metrics.WorkerMetrics([*routes, unmatched], self.sinks.batchers, self.consumers.consumers)
        tracing.metrics = worker
        if self.serve_metrics:
            app.router.add_get(metrics.METRICS_PATH, worker.handle)
        if self.dashboard:
            from bfctl.runtime.dashboard.routes import Dashboard

            Dashboard(self, among_siblings=os.getpid() != self._compiled_in).mount(app)
        app.router.add_route("*", r"/{_bf_unmatched:[\s\S]*}", metrics.timed(_unmatched, unmatched))
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    def _add_docs(self, app: web.Application) -> None:
        """``/openapi.json``, ``/docs`` and ``/redoc`` with the files they load, unless the flow uses those routes."""
        taken = {route for _, route in self.routes()}
        if OPENAPI_ROUTE not in taken:
            body = dumps(openapi.document(self.api_info, self.handlers, self.tags))
            app.router.add_get(OPENAPI_ROUTE, functools.partial(_static, body, JSON))
        for page in self.docs_pages:
            if any(_matches(resource, path) for resource in app.router.resources() for path in page.files):
                continue  # a flow route matches an asset's URL: the asset route would take its requests
            app.router.add_get(page.route, functools.partial(_static, page.body, "text/html"))
            for path, file in page.files.items():
                app.router.add_get(path, functools.partial(_asset, file))

    async def _on_startup(self, app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        # first: the clients that dependencies make from here on get their spans
        traced = app[TRACING].start(app) is not None
        # traced, sync code runs in a copy of its request's context: the spans it opens nest in the request's
        pool_class = ContextThreadPool if traced else self.pool_class
        self.pool = pool_class(self.threads, thread_name_prefix="bf-worker")
        self._owns_global = not self.lifecycle.global_built
        if self._owns_global:
            await self.lifecycle.start(Scope.GLOBAL, loop, self.pool)
        await self.lifecycle.start(Scope.REPLICA, loop, self.pool)
        await self.sinks.start()
        for handler in self.handlers:
            await handler.start(loop, self.pool, traced)
        await self.consumers.start(loop, self.pool, app[TRACING].recorder)

    def stop_consuming(self, grace: float) -> None:
        """Stop pulling (at SIGTERM, before requests drain): what is in flight has ``grace`` seconds."""
        self.consumers.stop_pulling(grace)

    async def _on_cleanup(self, app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        assert self.pool is not None
        await self.consumers.stop()  # their last rows go through the sinks' batchers, still open
        for handler in self.handlers:
            await handler.stop(loop, self.pool)
        await self.sinks.stop()  # writes every row still queued
        await app[TRACING].stop()  # sends the traces of those last rows' requests
        await self.lifecycle.stop(Scope.REPLICA, loop, self.pool)
        if self._owns_global:
            await self.lifecycle.stop(Scope.GLOBAL, loop, self.pool)
        self.pool.shutdown(wait=True)


async def _static(body: bytes, content_type: str, _request: web.Request) -> web.Response:
    return web.Response(body=body, content_type=content_type)


#: The asset URLs hold the version of the files, so a browser may keep what it fetched.
_ASSET_CACHE = "public, max-age=31536000, immutable"


async def _asset(file: Path, _request: web.Request) -> web.FileResponse:
    return web.FileResponse(file, headers={"Cache-Control": _ASSET_CACHE})


def _matches(resource: web.AbstractResource, path: str) -> bool:
    """Whether a registered route answers ``path`` (from aiohttp's public route description)."""
    info = resource.get_info()
    if "path" in info:
        return bool(info["path"] == path)
    pattern = info.get("pattern")
    return pattern is not None and pattern.fullmatch(path) is not None


async def _health(_request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _unmatched(request: web.Request) -> web.Response:
    """404 or 405 (with ``Allow``) as JSON; only reached when no route matched."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical == "/{_bf_unmatched}":
            continue
        _match, methods = await resource.resolve(request)
        allowed |= methods
    if allowed:
        return json_response(
            {"detail": f"Method {request.method} not allowed on {request.path}"},
            405,
            {"Allow": ", ".join(sorted(allowed))},
        )
    return json_response({"detail": f"No route for {request.path}"}, 404)
