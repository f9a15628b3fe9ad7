"""Spans as a few slots each, filled on the request path and converted only when read.

OpenTelemetry's SDK builds a context, a span object with locks, resource and limits, and calls its
processors for every span (see the bench's tracing section for what that costs). Here a span is
its name, two ids, two ``perf_counter_ns`` readings, its attributes and error (a trace is its own
root span: one object per request): what a trace on the dashboard or an OTLP export needs, and
nothing is converted until a trace is looked at or sent.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from typing import NamedTuple

from bfctl.runtime.tracing.store import SpanRecord, TraceSummary

Attributes = dict[str, str | int | float | bool]

#: Python reseeds ``random`` in a forked child, so workers never share ids.
_bits = random.getrandbits


class StepSpan(NamedTuple):
    """What a step's span is called and carries: worked out once per step at start-up."""

    name: str
    attributes: Attributes


#: A handler's times as one int: its start's offset from the trace's, shifted, and its duration
#: (in ns, under 2**40: 18 minutes). A kept trace holds one object for them, not three: what
#: keeping the last traces costs per request grows with the objects each one keeps alive.
_DURATION_BITS = 40
_LONGEST = (1 << _DURATION_BITS) - 1
#: The handler's span id is the root's with these bits flipped: stable however often it is read.
_HANDLER_ID_MASK = 0x5BD1E9955BD1E995


#: Held while an id is drawn or a trace's first child is added.
_LOCK = threading.Lock()

#: ``perf_counter_ns`` to the epoch's nanoseconds: spans read one clock only, and their wall-clock
#: times are derived when read (re-measured each minute, so the two clocks' drift stays small).
_epoch_offset = [time.time_ns() - time.perf_counter_ns(), time.perf_counter_ns()]
_REMEASURE_NS = 60 * 10**9


def epoch_ns(perf_ns: int) -> int:
    """The epoch's nanoseconds of a ``perf_counter_ns`` reading."""
    now = time.perf_counter_ns()
    if now - _epoch_offset[1] > _REMEASURE_NS:
        _epoch_offset[:] = [time.time_ns() - time.perf_counter_ns(), now]
    return perf_ns + _epoch_offset[0]


def _drawn(span: Span, slot: str, bits: int) -> int:
    """An id drawn when first read: most spans are never a parent, and a trace kept for the
    dashboard and never looked at needs none. Under a lock, as two threads may read it first
    together; non-zero, as W3C wants."""
    with _LOCK:
        value: int = getattr(span, slot)
        if not value:
            value = _bits(bits) or 1
            setattr(span, slot, value)
    return value


#: Something that happened at a moment of a span (OpenTelemetry's span events): its name, when
#: (``perf_counter_ns``) and its attributes.
Event = tuple[str, int, Attributes]


class Span:
    #: ``events`` is set only on a span that has some (OpenTelemetry's ``add_event``): read it
    #: through ``events_of``.
    __slots__ = ("_id", "attributes", "end", "error", "events", "name", "parent_id", "start", "trace")

    def __init__(self, trace: Trace, name: str, parent_id: int, attributes: Attributes | None = None) -> None:
        self.trace = trace
        self.name = name
        self._id = 0
        self.parent_id = parent_id
        self.attributes = attributes
        self.error: str | None = None
        self.start = time.perf_counter_ns()
        self.end = 0
        children = trace.children
        if children is _NONE_YET:
            _first_child(trace, self)
        else:
            children.append(self)  # list.append holds under the GIL: spans of threads may join

    @property
    def span_id(self) -> int:
        return self._id or _drawn(self, "_id", 64)

    def set(self, key: str, value: str | float | bool) -> None:
        """Adds an attribute (to a copy: spans of one step share their attributes as given)."""
        self.attributes = {**(self.attributes or {}), key: value}

    def fail(self, error: BaseException) -> None:
        self.error = f"{type(error).__name__}: {error}"

    def add_event(self, name: str, at: int, attributes: Attributes) -> None:
        events: list[Event] | None = getattr(self, "events", None)
        if events is None:
            self.events = events = []
        events.append((name, at, attributes))


def events_of(span: Span) -> list[Event]:
    return getattr(span, "events", None) or []


class Trace(Span):
    """One request, batch or message, and its root span: one object, as every traced request
    makes one. Its ``trace`` is itself until it is finished; ``children`` are its other spans in
    the order they started.

    A handler called straight from its route (no dependency made per call) runs alone under the
    root, so its span is recorded as ``handler`` (what), ``handler_times`` (``handle``'s packed
    start and duration) and ``handler_error`` (set only when it raised) and made a span only when
    the trace is read: the spans that started inside it (the flow's own, its queries and calls)
    are moved under it then. That spares every such request a span object and a second change of
    the current span. ``children`` is a list of its own from the first one on."""

    __slots__ = ("_trace_id", "children", "handler", "handler_error", "handler_times", "kind", "sampled", "status")

    def __init__(
        self,
        trace_id: int,  # 0: drawn when first read
        name: str,
        kind: str,
        sampled: bool,
        parent_span_id: int = 0,
        attributes: Attributes | None = None,
    ) -> None:
        self.trace = self
        self._trace_id = trace_id
        self._id = 0
        self.name = name
        self.kind = kind
        self.sampled = sampled
        #: The caller's span when the trace came in with a header (0 when it starts here).
        self.parent_id = parent_span_id
        self.attributes = attributes
        self.error = None
        self.children: list[Span] = _NONE_YET
        self.handler: StepSpan | None = None
        #: A request's HTTP status code; a batch's or message's "ok" or "error".
        self.status: int | str = "ok"
        self.start = time.perf_counter_ns()
        self.end = 0

    @property
    def trace_id(self) -> int:
        return self._trace_id or _drawn(self, "_trace_id", 128)

    @property
    def remote(self) -> bool:
        """Whether it continues a caller's trace."""
        return self.parent_id != 0

    @property
    def spans(self) -> list[Span]:
        """The root first, then the others in the order they started (the handler's made now)."""
        spans = [self, *self.children]
        if self.handler is not None:
            spans.append(self._handler_span(self.handler))
            spans.sort(key=_started)
        return spans

    def span_count(self) -> int:
        return len(self.children) + (1 if self.handler is None else 2)

    def handled(self, what: StepSpan, start: int, end: int, error: str | None) -> None:
        """Records the handler's span (``in_handler_span``)."""
        self.handler_times = (start - self.start) << _DURATION_BITS | min(end - start, _LONGEST)
        if error is not None:
            self.handler_error = error
        self.handler = what

    def _handler_span(self, what: StepSpan) -> Span:
        """The handler's span, from its times: the same id each time it is read, and each span that
        began under the root while the handler ran moved under it (once: the move is kept)."""
        times: int = self.handler_times
        start = self.start + (times >> _DURATION_BITS)
        end = start + (times & _LONGEST)
        span = Span.__new__(Span)
        span.trace, span.name, span.attributes = self, what.name, what.attributes
        span.error = getattr(self, "handler_error", None)
        span._id = (self.span_id ^ _HANDLER_ID_MASK) or 1
        span.parent_id, span.start, span.end = self.span_id, start, end
        for child in self.children:
            if child.parent_id == self.span_id and start <= child.start <= end:
                child.parent_id = span.span_id
        return span

    @property
    def wall(self) -> float:
        """When it started, in seconds since the epoch."""
        return epoch_ns(self.start) / 1e9

    def attributes_of(self, span: Span) -> Attributes:
        """A span's attributes; the root of a request also has its status code."""
        given = span.attributes or {}
        if span is self and isinstance(self.status, int):
            return {**given, "http.response.status_code": self.status}
        return given

    # -- as the dashboard's store reads it (built when read, not when recorded) -------------------
    def matches(self, trace_id: str) -> bool:
        # an id never drawn was never shown, so nobody asks for it
        return bool(self._trace_id) and trace_id == f"{self._trace_id:032x}"

    def summary(self) -> TraceSummary:
        return {
            "trace_id": f"{self.trace_id:032x}",
            "name": self.name,
            "kind": self.kind,
            "status": str(self.status),
            "started_at": self.wall,
            "duration_ms": (self.end - self.start) / 1e6,
            "error": self.error is not None,  # a 5xx or what escaped: a 4xx is the caller's
            "span_count": self.span_count(),
        }

    def records(self) -> list[SpanRecord]:
        origin = self.start
        return [
            {
                "span_id": f"{span.span_id:016x}",
                # the caller's span (a remote parent) is not among the trace's spans
                "parent_id": f"{span.parent_id:016x}"
                if span.parent_id and (span is not self or not self.remote)
                else None,
                "name": span.name,
                "start_ms": (span.start - origin) / 1e6,
                "duration_ms": ((span.end or span.start) - span.start) / 1e6,
                "attributes": dict(self.attributes_of(span)),
                "error": span.error,
                "events": [
                    {"name": name, "at_ms": (at - origin) / 1e6, "attributes": dict(attributes)}
                    for name, at, attributes in events_of(span)
                ],
            }
            for span in self.spans
        ]


def _started(span: Span) -> int:
    return span.start


#: A trace's ``children`` until its first: most traces (a handler without dependencies) have
#: none, and a kept trace then keeps no list alive. Never appended to.
_NONE_YET: list[Span] = []


def _first_child(trace: Trace, span: Span) -> None:
    with _LOCK:  # two threads may add a first child together: neither is lost
        if trace.children is _NONE_YET:
            trace.children = [span]
        else:
            trace.children.append(span)


class _Discarded(list["Span"]):
    """The spans of work that outlives its trace: dropped."""

    def append(self, _span: Span) -> None:
        pass


#: What a finished trace's spans, its root (itself) included, point at instead of it
#: (``Recorder.finish`` repoints them): no reference cycle keeps a trace alive once the store and
#: the exporter let go of it (it is freed at once, not by the cyclic collector, whose pauses over
#: thousands of kept traces showed in the p99), and spans opened later, by work that outlives its
#: request, are dropped.
FINISHED = Trace(0, "finished", "request", False)
FINISHED.children = _Discarded()


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
