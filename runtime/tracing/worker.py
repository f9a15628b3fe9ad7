"""Tracing in one worker: its routes' entries, and what starts and stops with the worker.

Routes are added before anything says whether this worker traces (the dashboard's store is set
on the app as it is built, the exporter comes from the environment), so each route is entered
through a one-slot switch that start-up points at the route's traced or plain handler.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from aiohttp import web

from bfctl.runtime.cloud_logging import JSON_LOGS
from bfctl.runtime.tracing.recorder import Handler, Recorder
from bfctl.runtime.tracing.store import TRACE_STORE

if TYPE_CHECKING:
    from bfctl.runtime.metrics import WorkerMetrics


class WorkerTracing:
    def __init__(self) -> None:
        #: Where /_bf/metrics counts the spans exported, dropped and failed (set once it exists).
        self.metrics: WorkerMetrics | None = None
        self._routes: list[tuple[list[Handler], Handler, str, str, str]] = []
        self.recorder: Recorder | None = None

    def entry(self, handle: Handler, method: str, route: str, kind: str) -> Handler:
        """The route's handler: ``handle``, traced when the worker starts tracing."""
        slot = [handle]
        self._routes.append((slot, handle, method, route, kind))

        async def entered(request: web.Request) -> web.StreamResponse:
            return await slot[0](request)

        return entered

    def start(self, app: web.Application) -> Recorder | None:
        """Decides, once, whether this worker traces; when it does, points every route at its
        traced handler, starts the exporter and installs the OpenTelemetry API's provider."""
        self.recorder = recorder = Recorder.build(app.get(TRACE_STORE), os.environ)
        if recorder is None:
            return None
        join_logs = app.get(JSON_LOGS, False)
        for slot, handle, method, route, kind in self._routes:
            slot[0] = recorder.route(handle, method, route, kind, join_logs)
        if recorder.exporter is not None:
            recorder.exporter.start()
            if self.metrics is not None:
                self.metrics.trace_spans = recorder.exporter.counts
        from bfctl.runtime.tracing import clients

        clients.install()
        if "opentelemetry" in sys.modules:  # the flow uses the API: its spans nest in ours
            from bfctl.runtime.tracing import otel

            otel.install()
        return recorder

    async def stop(self) -> None:
        """Sends what the exporter still holds (after the requests and consumers have finished)."""
        if self.recorder is not None and self.recorder.exporter is not None:
            await self.recorder.exporter.stop()


TRACING: web.AppKey[WorkerTracing] = web.AppKey("bfctl_worker_tracing", WorkerTracing)
