"""Whether and how this worker traces: decided once at start-up, then one wrapper per route.

With no store, no exporter and nothing asking for it, ``Recorder.build`` returns ``None`` and
every route keeps its untraced handler: tracing off costs nothing per request. When on, a
request's trace begins where the route is entered (adopting the caller's trace id), its spans
are filled as it runs, and at its end it is kept (the dashboard's store) and, when sampled,
queued for export.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from random import getrandbits  # reseeded in a forked worker: no two share ids
from typing import TYPE_CHECKING

from aiohttp import web

from bfctl.runtime.cloud_logging import adopt_trace
from bfctl.runtime.tracing import propagation
from bfctl.runtime.tracing.propagation import CLOUD_TRACE, TRACEPARENT
from bfctl.runtime.tracing.sampling import Sampler
from bfctl.runtime.tracing.spans import FINISHED, Attributes, Trace, current
from bfctl.runtime.tracing.store import TraceStore

if TYPE_CHECKING:
    from bfctl.runtime.tracing.export import Exporter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Recorder:
    """Begins and ends the traces of one worker."""

    def __init__(self, sampler: Sampler, store: TraceStore | None, exporter: Exporter | None) -> None:
        self.sampler = sampler
        self.store = store
        self.exporter = exporter
        #: Every trace begun here is sampled: its id is drawn only when something reads it.
        self._every = sampler.ratio >= 1.0

    @classmethod
    def build(cls, store: TraceStore | None, environ: Mapping[str, str]) -> Recorder | None:
        """The recorder this worker needs, or ``None`` when nothing would read a trace."""
        from bfctl.runtime.tracing import export

        exporter = export.from_environment(environ)
        if store is None and exporter is None:
            return None
        return cls(Sampler.from_environment(environ), store, exporter)

    def begin(
        self, name: str, kind: str, headers: Mapping[str, str] | None = None, attributes: Attributes | None = None
    ) -> Trace | None:
        """A new trace (continuing the caller's when its headers name one), or ``None`` when it
        would be neither kept nor sampled."""
        caller = propagation.incoming(headers) if headers is not None else None
        if caller is None:
            if self._every:
                return Trace(0, name, kind, True, 0, attributes)
            trace_id = getrandbits(128) or 1
            sampled = self.sampler.sampled(trace_id, None)
            parent = 0
        else:
            trace_id, parent = caller.trace_id, caller.parent_span_id
            sampled = self.sampler.sampled(trace_id, caller.sampled)
        if not sampled and self.store is None:
            return None
        return Trace(trace_id, name, kind, sampled, parent, attributes)

    def finish(self, trace: Trace) -> None:
        """Keeps and queues a finished trace, then points its spans at ``FINISHED`` instead of it."""
        if self.store is not None:
            self.store.keep(trace)
        if trace.sampled and self.exporter is not None:
            self.exporter.offer(trace)
        trace.trace = FINISHED
        for span in trace.children:
            span.trace = FINISHED

    def route(self, handle: Handler, method: str, route: str, kind: str, join_logs: bool) -> Handler:
        """``handle`` with each request traced: a root span named for the route, with its status
        (``Trace.attributes`` adds it); ``join_logs``: JSON logs are on and name the trace."""
        name = f"{method} {route}" if kind == "request" else f"collector {method} {route}"
        attributes: Attributes = {"http.request.method": method, "http.route": route}
        begin, exporting, every = self.begin, self.exporter is not None, self._every
        keep = self.store.keep if self.store is not None else None
        offer = self.exporter.offer if self.exporter is not None else None

        async def traced(request: web.Request) -> web.StreamResponse:
            headers = request.headers
            if every and TRACEPARENT not in headers and CLOUD_TRACE not in headers:
                trace = Trace(0, name, kind, True, 0, attributes)  # begin() inlined: the usual case
            else:
                found = begin(name, kind, headers, attributes)
                if found is None:
                    return await handle(request)
                trace = found
            token = current.set(trace)
            # the log names our span when it is sent (Cloud Trace shows the line under it) or the
            # trace began here; else the caller's span, which its header named, stays
            if join_logs and (not trace.remote or (exporting and trace.sampled)):
                adopt_trace(request, trace.trace_id, trace.span_id, trace.sampled)
            try:
                response = await handle(request)
            except web.HTTPException as e:  # a redirect or an error aiohttp answers itself
                trace.status = e.status
                raise
            except BaseException as e:
                trace.status = "error"
                trace.fail(e)
                raise
            else:
                status = response.status
                trace.status = status
                if status >= 500:
                    trace.error = trace.error or f"HTTP {status}"
                return response
            finally:
                trace.end = time.perf_counter_ns()
                current.reset(token)
                # finish() inlined: one call fewer on every traced request
                if keep is not None:
                    keep(trace)
                if offer is not None and trace.sampled:
                    offer(trace)
                trace.trace = FINISHED
                for span in trace.children:
                    span.trace = FINISHED

        return traced
