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
from collections.abc import Callable
from typing import Any

Attributes = dict[str, str | int | float | bool]

#: Python reseeds ``random`` in a forked child, so workers never share ids.
_bits = random.getrandbits


def new_span_id() -> int:
    """A non-zero 64-bit span id (W3C forbids all zeros)."""
    return _bits(64) or 1


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

    def wall_ns(self, perf_ns: int) -> int:
        """A ``perf_counter_ns`` reading as nanoseconds since the epoch (exports want those)."""
        return int(self.wall * 1e9) + perf_ns - self.start_ns


class Span:
    __slots__ = ("attributes", "end", "error", "name", "parent_id", "span_id", "start", "trace")

    def __init__(self, trace: Trace, name: str, parent_id: int, attributes: Attributes | None = None) -> None:
        self.trace = trace
        self.name = name
        self.span_id = new_span_id()
        self.parent_id = parent_id
        self.attributes = attributes
        self.error: str | None = None
        self.start = time.perf_counter_ns()
        self.end = 0
        trace.spans.append(self)  # list.append holds under the GIL: spans of threads may join

    def set(self, key: str, value: str | float | bool) -> None:
        if self.attributes is None:
            self.attributes = {key: value}
        else:
            self.attributes[key] = value

    def fail(self, error: BaseException) -> None:
        self.error = f"{type(error).__name__}: {error}"


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


def traced_call(name: str, attributes: Attributes | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a span of its own (a sync dependency or handler in a thread)."""
    with child(name, attributes):
        return fn(*args, **kwargs)
