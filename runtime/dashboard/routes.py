"""The dashboard's routes on the flow's own server: its page and files, the JSON its pages read
under ``/_bf/api/``, and ``/_bf/events``, one server-sent event stream per open page that brings
the traces finished and the lines logged, a few times a second, and the Data page's figures
once a second.

Each worker keeps its own traces, counters and log lines; among several forked workers, the one
that answers a page adds its siblings' (``siblings``), so that every page shows the whole flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bfctl.runtime.dashboard import data, graph
from bfctl.runtime.dashboard.data import INTERVAL, DataSampler
from bfctl.runtime.dashboard.logs import LogRing
from bfctl.runtime.dashboard.policy import PATH, is_loopback, typed_by_hand
from bfctl.runtime.dashboard.siblings import Relay, Siblings
from bfctl.runtime.errors import one_line
from bfctl.runtime.responses import JSON, dumps, json_response
from bfctl.runtime.tracing.store import TRACE_STORE, TraceStore, TraceSummary

if TYPE_CHECKING:
    from bfctl.runtime.app import FlowApp

STATIC = Path(__file__).parent / "static"
#: The page's files and their content types: everything it loads comes from here, no CDN.
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
#: Seconds between the event stream's writes of what finished meanwhile.
TICK = 0.25
#: At most this many traces (and log lines) a tick: a page shows the newest few hundred, and a
#: flow serving thousands of requests a second would otherwise send it megabytes a second.
PER_TICK = 100
#: Traces the Requests page gets when it opens (the store keeps more).
RECENT_TRACES = 200
#: Output names whose values are never shown, whatever the provider recorded.
_SECRET_NAME = re.compile(r"password|secret|token|credential|private|key", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]+):[^@/\s]+@")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def redacted(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's outputs fit to show: secret-looking names hidden, passwords cut out of URLs."""
    shown: dict[str, Any] = {}
    for name, value in outputs.items():
        if _SECRET_NAME.search(name):
            shown[name] = "(secret)"
        elif isinstance(value, Mapping):
            shown[name] = redacted(value)
        elif isinstance(value, str):
            shown[name] = _URL_PASSWORD.sub(r"\1:(secret)@", value)
        else:
            shown[name] = value
    return shown


def _loopback_only(handle: Handler) -> Handler:
    """Refuses peers other than this machine, and requests for a host name other than its own,
    whatever interface the server is bound to."""

    @functools.wraps(handle)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not is_loopback(request.remote or ""):
            return json_response({"detail": "the dashboard answers only this machine (loopback)"}, 403)
        if not typed_by_hand(request.headers.get("Host", "")):
            return json_response({"detail": "the dashboard answers only requests for localhost or an address"}, 403)
        return await handle(request)

    return guarded


class Dashboard:
    """One worker's dashboard: what its pages read, and the streams feeding them.

    ``among_siblings``: this worker is one of several forked ones, which answer each other."""

    def __init__(self, flow_app: FlowApp, among_siblings: bool = False) -> None:
        self._flow_app = flow_app
        self.worker = os.getpid()
        self.siblings = Siblings(Path.cwd()) if among_siblings else None
        self.traces = TraceStore()
        self.logs = LogRing()
        self.data = DataSampler(flow_app.sinks.batchers, flow_app.consumers.consumers)
        self._closing = asyncio.Event()
        self._sampling: asyncio.Task[None] | None = None
        self._files = {name: (STATIC / name).read_bytes() for name in ("index.html", *ASSETS)}

    def mount(self, app: web.Application) -> None:
        app[TRACE_STORE] = self.traces
        routes: dict[str, Handler] = {
            "": self._page,
            "api/flow": self._flow,
            "api/traces": self._recent,
            "api/traces/{trace_id}": self._trace,
            "api/data": self._data,
            "api/rows": self._rows,
            "api/backlogs": self._backlogs,
            "api/resources": self._resources,
            "api/logs": self._logs,
            "events": self._events,
            "assets/{name}": self._asset,
        }
        app.router.add_get(PATH.rstrip("/"), _loopback_only(_to_page))
        for path, handle in routes.items():
            app.router.add_get(PATH + path, _loopback_only(handle))
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._stop)

    def _own_part(self) -> web.Application:
        """What this worker answers its siblings on its private port: its own part only."""
        own = web.Application()
        routes: dict[str, Handler] = {
            "traces": self._own_recent,
            "traces/{trace_id}": self._own_trace,
            "data": self._own_data,
            "logs": self._own_logs,
            "events": self._own_events,
        }
        for path, handle in routes.items():
            own.router.add_get("/" + path, _loopback_only(handle))
        return own

    async def _start(self, _app: web.Application) -> None:
        logging.getLogger().addHandler(self.logs)
        self._sampling = asyncio.get_running_loop().create_task(self._sample(), name="dashboard sampling")
        if self.siblings is not None:
            await self.siblings.start(self._own_part())

    async def _shutdown(self, _app: web.Application) -> None:
        """Ends the open event streams, so that a page left open never holds the server's exit."""
        self._closing.set()

    async def _stop(self, _app: web.Application) -> None:
        logging.getLogger().removeHandler(self.logs)
        if self.siblings is not None:
            await self.siblings.stop()
        if self._sampling is not None:
            self._sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampling

    async def _sample(self) -> None:
        while True:
            self.data.sample()
            await asyncio.sleep(INTERVAL)

    # -- the page ----------------------------------------------------------------------------
    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._files["index.html"], content_type="text/html", headers=_NO_STORE)

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            return json_response({"detail": f"No dashboard file {name}"}, 404)
        return web.Response(body=self._files[name], content_type=ASSETS[name], headers=_NO_STORE)

    # -- what the pages read -----------------------------------------------------------------
    @functools.cached_property
    def _boxes(self) -> graph.Picture:
        return graph.picture(self._flow_app)

    @functools.cached_property
    def _picture(self) -> bytes:
        return dumps({"flow_id": self._flow_app.flow.flow_id, **graph.as_json(self._boxes)})

    async def _flow(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._picture, content_type=JSON)

    def _labelled(self, summaries: list[TraceSummary]) -> list[dict[str, Any]]:
        """Summaries with the worker that served them (the store's own are shared: left as they are)."""
        return [{**summary, "worker": self.worker} for summary in summaries]

    async def _own_recent(self, _request: web.Request) -> web.Response:
        return json_response(self._labelled(self.traces.recent(RECENT_TRACES)))

    async def _recent(self, request: web.Request) -> web.Response:
        if self.siblings is None:
            return await self._own_recent(request)
        traces = self._labelled(self.traces.recent(RECENT_TRACES))
        for theirs in await self.siblings.ask("/traces"):
            traces += theirs
        traces.sort(key=lambda trace: trace["started_at"], reverse=True)
        return json_response(traces[:RECENT_TRACES])

    async def _own_trace(self, request: web.Request) -> web.Response:
        trace_id = request.match_info["trace_id"].lower()
        spans = self.traces.get(trace_id) if _TRACE_ID.fullmatch(trace_id) else None
        if spans is None:
            return json_response({"detail": f"No kept trace {trace_id}"}, 404)
        return json_response({"trace_id": trace_id, "spans": spans, "worker": self.worker})

    async def _trace(self, request: web.Request) -> web.Response:
        own = await self._own_trace(request)
        trace_id = request.match_info["trace_id"].lower()
        siblings = self.siblings
        if (
            own.status == 404
            and siblings
            and _TRACE_ID.fullmatch(trace_id)
            and (found := await siblings.ask(f"/traces/{trace_id}"))
        ):
            return json_response(found[0])
        return own

    async def _own_data(self, _request: web.Request) -> web.Response:
        return json_response(self.data.snapshot())

    async def _data(self, request: web.Request) -> web.Response:
        if self.siblings is None:
            return await self._own_data(request)
        return json_response(data.merged([self.data.snapshot(), *await self.siblings.ask("/data")]))

    async def _rows(self, request: web.Request) -> web.Response:
        """``?sink=<id>``: the latest rows of a sink's local table."""
        sink = request.query.get("sink", "")
        batcher = self._flow_app.sinks.batchers.get(sink)
        found = None
        if batcher is not None:
            from bfctl.runtime.dashboard import tables

            outputs = self._flow_app.outputs.get(sink) or {}
            try:
                found = await tables.latest(batcher.writer, outputs, Path.cwd())
            except Exception as e:  # the database stopped, say: told on the page, never a 500
                return json_response({"detail": f"reading the rows of {sink} failed: {one_line(e)}"}, 503)
        if found is None:
            return json_response({"detail": f"{sink or 'no sink'} is no local table this worker writes"}, 404)
        return json_response(found)

    async def _backlogs(self, _request: web.Request) -> web.Response:
        """Per consumer, what waits in the subscription it reads (None: not known for its source)."""
        from bfctl.runtime.dashboard import streams

        outputs, project_dir = self._flow_app.outputs, Path.cwd()
        sources = {c.name: c.consumer.source_primitive.primitive_id() for c in self._flow_app.consumers.consumers}

        def count() -> dict[str, dict[str, int] | None]:
            return {name: streams.backlog(outputs.get(source) or {}, project_dir) for name, source in sources.items()}

        return json_response(await asyncio.to_thread(count))

    async def _resources(self, _request: web.Request) -> web.Response:
        """Every resource the flow declares or uses, with what the last apply recorded of it."""
        outputs = self._flow_app.outputs
        kinds = {n.info["id"]: n.info["type"] for n in self._boxes.boxes.values() if n.kind == "resource"}
        resources = [
            {
                "id": pid,
                "type": kinds.get(pid, ""),
                "applied": pid in outputs,
                "outputs": redacted(outputs.get(pid) or {}),
            }
            for pid in dict.fromkeys([*kinds, *outputs])
        ]
        return json_response({"target": outputs.target, "resources": resources})

    async def _own_logs(self, _request: web.Request) -> web.Response:
        return json_response(self.logs.recent())

    async def _logs(self, request: web.Request) -> web.Response:
        if self.siblings is None:
            return await self._own_logs(request)
        lines = self.logs.recent()
        for theirs in await self.siblings.ask("/logs"):
            lines += theirs
        lines.sort(key=lambda line: line["time"])
        return json_response(lines)

    # -- live --------------------------------------------------------------------------------
    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Every ``TICK`` seconds, what finished meanwhile as one ``traces`` and one ``logs``
        event, and every ``INTERVAL`` the Data page's figures: a page open on a busy flow
        costs a few writes a second, not one per request. Among siblings, theirs too."""
        return await self._stream(request, None if self.siblings is None else Relay(self.siblings, PER_TICK))

    async def _own_events(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, None)

    async def _stream(self, request: web.Request, relay: Relay | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **_NO_STORE})
        await response.prepare(request)
        traces, lines = self.traces.subscribe(), self.logs.subscribe()
        loop = asyncio.get_running_loop()
        sent = -INTERVAL
        try:
            while not self._closing.is_set():
                if loop.time() >= sent + INTERVAL:
                    figures = self.data.snapshot()
                    if relay is not None:
                        relay.follow()  # siblings that started since the last look too
                        figures = data.merged([figures, *relay.figures.values()])
                    await response.write(_event("data", figures))
                    sent = loop.time()
                news = {"traces": self._labelled(_drain(traces)), "logs": _drain(lines)}
                if relay is not None:
                    news["traces"] = _newest(news["traces"] + relay.take("traces"), "started_at")
                    news["logs"] = _newest(news["logs"] + relay.take("logs"), "time")
                for name, items in news.items():
                    if items:
                        await response.write(_event(name, items))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), TICK)
        except ConnectionResetError:  # the page was closed
            pass
        finally:
            self.traces.unsubscribe(traces)
            self.logs.unsubscribe(lines)
            if relay is not None:
                await relay.close()
        return response


_NO_STORE = {"Cache-Control": "no-store"}


async def _to_page(_request: web.Request) -> web.Response:
    raise web.HTTPFound(PATH)


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    """The newest ``PER_TICK`` of what a queue holds; it is left empty."""
    items: deque[Any] = deque(maxlen=PER_TICK)
    while not queue.empty():
        items.append(queue.get_nowait())
    return list(items)


def _newest(items: list[dict[str, Any]], when: str) -> list[dict[str, Any]]:
    """The newest ``PER_TICK`` of several workers' items, oldest first."""
    return sorted(items, key=lambda item: item[when])[-PER_TICK:]


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(payload) + b"\n\n"
