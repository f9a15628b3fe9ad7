"""Spans as a few slots each, filled on the request path and converted only when read.

OpenTelemetry's SDK builds a context, a span object with locks, resource and limits, and calls its
processors for every span (see the bench's tracing section for what that costs). Here a span is
its name, two ids, two ``perf_counter_ns`` readings, its attributes and error: what a trace on
the dashboard or an OTLP export needs, and nothing is converted until a trace is looked at or sent.
"""

from __future__ import annotations

import contextvars
import random
import time

from bfctl.runtime.tracing.store import SpanRecord, TraceSummary

Attributes = dict[str, str | int | float | bool]

#: Python reseeds ``random`` in a forked child, so workers never share ids.
_bits = random.getrandbits


def new_trace_id() -> int:
    """A non-zero 128-bit trace id."""
    return _bits(128) or 1


class Trace:
    """One request, batch or message: its spans in the order they started, and how it ended."""

    __slots__ = (
        "kind",
        "name",
        "parent_span_id",
        "remote",
        "sampled",
        "spans",
        "start_ns",
        "status",
        "trace_id",
        "wall",
    )

    def __init__(self, trace_id: int, name: str, kind: str, sampled: bool, parent_span_id: int = 0) -> None:
        self.trace_id = trace_id
        self.name = name
        self.kind = kind
        self.sampled = sampled
        #: The caller's span when the trace came in with a header (0 when it starts here).
        self.parent_span_id = parent_span_id
        self.spans: list[Span] = []
        self.status = "ok"
        self.wall = time.time()
        self.start_ns = time.perf_counter_ns()
        self.remote = parent_span_id != 0

    def attributes(self, index: int) -> Attributes:
        """The attributes of the trace's ``index``-th span; a request's root also has its status code."""
        given = self.spans[index].attributes or {}
        if index == 0 and self.status.isdigit():
            return {**given, "http.response.status_code": int(self.status)}
        return given

    # -- as the dashboard's store reads it (built when read, not when recorded) -------------------
    def matches(self, trace_id: str) -> bool:
        return trace_id == f"{self.trace_id:032x}"

    def summary(self) -> TraceSummary:
        root = self.spans[0]
        return {
            "trace_id": f"{self.trace_id:032x}",
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "started_at": self.wall,
            "duration_ms": (root.end - root.start) / 1e6,
            "error": root.error is not None,  # a 5xx or what escaped: a 4xx is the caller's
            "span_count": len(self.spans),
        }

    def records(self) -> list[SpanRecord]:
        origin = self.start_ns
        return [
            {
                "span_id": f"{span.span_id:016x}",
                # the caller's span (a remote parent) is not among the trace's spans
                "parent_id": f"{span.parent_id:016x}" if span.parent_id and (i or not self.remote) else None,
                "name": span.name,
                "start_ms": (span.start - origin) / 1e6,
                "duration_ms": ((span.end or span.start) - span.start) / 1e6,
                "attributes": dict(self.attributes(i)),
                "error": span.error,
            }
            for i, span in enumerate(self.spans)
        ]


class _Discarded(list["Span"]):
    """The spans of work that outlives its trace: dropped."""

    def append(self, _span: Span) -> None:
        pass


class Span:
    __slots__ = ("attributes", "end", "error", "name", "parent_id", "span_id", "start", "trace")

    def __init__(self, trace: Trace, name: str, parent_id: int, attributes: Attributes | None = None) -> None:
        self.trace = trace
        self.name = name
        self.span_id = _bits(64) or 1  # non-zero, as W3C wants
        self.parent_id = parent_id
        self.attributes = attributes
        self.error: str | None = None
        self.start = time.perf_counter_ns()
        self.end = 0
        trace.spans.append(self)  # list.append holds under the GIL: spans of threads may join

    def set(self, key: str, value: str | float | bool) -> None:
        """Adds an attribute (to a copy: spans of one step share their attributes as given)."""
        self.attributes = {**(self.attributes or {}), key: value}

    def fail(self, error: BaseException) -> None:
        self.error = f"{type(error).__name__}: {error}"


#: What a finished trace's spans point at instead of it (``Recorder.finish`` repoints them): no
#: reference cycle keeps a trace alive once the store and the exporter let go of it (it is freed
#: at once, not by the cyclic collector, whose pauses over thousands of kept traces showed in the
#: p99), and spans opened later, by work that outlives its request, are dropped.
FINISHED = Trace(0, "finished", "request", False)
FINISHED.spans = _Discarded()


#: The span code running now belongs to (``None``: not traced).
current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("bf_span", default=None)


class child:
    """``with child("name", attrs):`` a span under the current one, current while the block runs
    and failed with what it raises; nothing at all when the code runs untraced."""

    __slots__ = ("attributes", "name", "span", "token")

    def __init__(self, name: str, attributes: Attributes | None = None) -> None:
        self.name = name
        self.attributes = attributes
        self.span: Span | None = None

    def __enter__(self) -> Span | None:
        parent = current.get()
        if parent is None:
            return None
        self.span = span = Span(parent.trace, self.name, parent.span_id, self.attributes)
        self.token = current.set(span)
        return span

    def __exit__(self, kind: object, error: BaseException | None, _tb: object) -> None:
        span = self.span
        if span is None:
            return
        span.end = time.perf_counter_ns()
        if error is not None:
            span.fail(error)
        current.reset(self.token)
