"""The last finished traces of one worker, kept in memory for the local dashboard.

A bounded deque: the oldest trace falls out when a new one arrives, so memory stays flat however
long the flow serves. Subscribers (the dashboard's live pages) get each finished trace's summary
on a bounded queue of their own; a subscriber that stops reading loses summaries rather than
holding the request path or growing without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol, TypedDict

from aiohttp import web

#: How many summaries a subscriber may leave unread before newer ones are dropped for it.
SUBSCRIBER_BACKLOG = 1000


class TraceSummary(TypedDict):
    trace_id: str  # 32 hex digits
    name: str  # "GET /bob", "collector POST /clicks", "consumer handle_row"
    kind: str  # "request" | "batch" | "message"
    status: str  # "200", "422", "ok", "error"
    started_at: float  # epoch seconds
    duration_ms: float
    error: bool
    span_count: int


class SpanRecord(TypedDict):
    span_id: str
    parent_id: str | None
    name: str
    start_ms: float  # from the trace's start
    duration_ms: float
    attributes: dict[str, str | int | float | bool]
    error: str | None  # the exception's type and message, when the span raised
    events: list[EventRecord]  # what the flow added with OpenTelemetry's add_event / record_exception


class EventRecord(TypedDict):
    name: str
    at_ms: float  # from the trace's start
    attributes: dict[str, str | int | float | bool]


#: A trace's spans, or what builds them when first asked for: most kept traces are never opened,
#: so the recorder may hand over its compact form and pay for the conversion only on ``get``.
Spans = list[SpanRecord] | Callable[[], list[SpanRecord]]


class Kept(Protocol):
    """A finished trace as the recorder keeps it: summarised and converted only when read."""

    def matches(self, trace_id: str) -> bool: ...

    def summary(self) -> TraceSummary: ...

    def records(self) -> list[SpanRecord]: ...


class _Given:
    """A trace handed over already summarised (``TraceStore.add``)."""

    __slots__ = ("_spans", "_summary")

    def __init__(self, summary: TraceSummary, spans: Spans) -> None:
        self._summary = summary
        self._spans = spans

    def matches(self, trace_id: str) -> bool:
        return self._summary["trace_id"] == trace_id

    def summary(self) -> TraceSummary:
        return self._summary

    def records(self) -> list[SpanRecord]:
        return self._spans() if callable(self._spans) else self._spans


class TraceStore:
    """The last ``capacity`` finished traces of this worker, newest last."""

    #: As many as the Requests page lists (its KEPT_ROWS): keeping more would cost every request
    #: (each kept trace's objects stay alive) for traces nobody can open from the page.
    CAPACITY = 500

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._traces: deque[Kept] = deque(maxlen=capacity)
        self._subscribers: list[asyncio.Queue[TraceSummary]] = []

    def add(self, summary: TraceSummary, spans: Spans) -> None:
        """Keeps a finished trace and hands its summary to every subscriber that has room."""
        self.keep(_Given(summary, spans))

    def keep(self, trace: Kept) -> None:
        """``add`` for a trace that summarises itself: nothing is built unless someone reads it."""
        self._traces.append(trace)
        if self._subscribers:
            summary = trace.summary()
            for queue in self._subscribers:
                if queue.qsize() < SUBSCRIBER_BACKLOG:
                    queue.put_nowait(summary)

    def recent(self, limit: int = 100) -> list[TraceSummary]:
        """The newest ``limit`` summaries, newest first."""
        traces = self._traces
        count = min(limit, len(traces))
        return [traces[-1 - index].summary() for index in range(count)]

    def get(self, trace_id: str) -> list[SpanRecord] | None:
        """The spans of a kept trace (``None`` once it has fallen out, or if it never was)."""
        for trace in reversed(self._traces):
            if trace.matches(trace_id):
                return trace.records()
        return None

    def subscribe(self) -> asyncio.Queue[TraceSummary]:
        """A queue on which each trace finished from now on is put."""
        queue: asyncio.Queue[TraceSummary] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[TraceSummary]) -> None:
        """Stops feeding a queue from ``subscribe`` (a second call is harmless)."""
        if queue in self._subscribers:
            self._subscribers.remove(queue)


#: Set by the dashboard when it is on; when present, every request, batch and message is traced and kept.
TRACE_STORE: web.AppKey[TraceStore] = web.AppKey("bfctl_trace_store", TraceStore)
