"""The OpenTelemetry API, recording into our spans: spans a flow opens with
``opentelemetry.trace`` (and those of OpenTelemetry's instrumentations, such as SQLAlchemy's or
the aiohttp client's) become children of the request's current span, and an outgoing call's
``traceparent`` names our trace.

Imported only by a worker that traces a flow that imported the API itself (a flow that never
imports it cannot open a span with it, and its start-up does not pay for the import).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import _RuntimeContext as RuntimeContext
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes as OtelAttributes
from opentelemetry.util.types import AttributeValue

from bfctl.runtime.tracing.spans import Span, current, epoch_ns


def install() -> None:
    """Make ours the global TracerProvider (once per process; a flow's own provider, set
    before ours, is left alone: OpenTelemetry allows one), and our current span the API's when
    it has none of its own."""
    if not isinstance(trace.get_tracer_provider(), Provider):
        trace.set_tracer_provider(Provider())
    # the API reads its runtime context through this module variable at each call (it is chosen
    # once, at import, from $OTEL_PYTHON_CONTEXT): wrapping it is the one way to add ours
    runtime = otel_context._RUNTIME_CONTEXT
    if not isinstance(runtime, WithOurs):
        otel_context._RUNTIME_CONTEXT = WithOurs(runtime)


class WithOurs(RuntimeContext):
    """OpenTelemetry's context, with our current span as its current span when it has none: in
    a handler, ``trace.get_current_span()`` is the request's span (a dependency's while one is
    built), as OpenTelemetry's server instrumentations make it, so ``set_attribute`` on it lands
    on the request's trace."""

    def __init__(self, inner: RuntimeContext) -> None:
        self._inner = inner

    def attach(self, context: otel_context.Context) -> Token[otel_context.Context]:
        return self._inner.attach(context)

    def get_current(self) -> otel_context.Context:
        context = self._inner.get_current()
        ours = current.get()
        if ours is None or trace.get_current_span(context) is not trace.INVALID_SPAN:
            return context
        return trace.set_span_in_context(Recorded(ours), context)

    def detach(self, token: Token[otel_context.Context]) -> None:
        self._inner.detach(token)


def _value(value: AttributeValue) -> str | int | float | bool:
    return value if isinstance(value, (str, int, float, bool)) else str(value)


class Recorded(trace.Span):
    """An API span backed by one of ours."""

    def __init__(self, span: Span) -> None:
        self.span = span
        self._context = SpanContext(
            span.trace.trace_id,
            span.span_id,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED if span.trace.sampled else TraceFlags.DEFAULT),
        )

    def end(self, end_time: int | None = None) -> None:
        if not self.span.end:
            self.span.end = time.perf_counter_ns()

    def get_span_context(self) -> SpanContext:
        return self._context

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        for key, value in attributes.items():
            self.span.set(key, _value(value))

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.span.set(key, _value(value))

    def add_event(self, name: str, attributes: OtelAttributes = None, timestamp: int | None = None) -> None:
        at = time.perf_counter_ns() if timestamp is None else timestamp - epoch_ns(0)  # the API's are the epoch's
        self.span.add_event(name, at, {key: _value(value) for key, value in (attributes or {}).items()})

    def update_name(self, name: str) -> None:
        self.span.name = name

    def is_recording(self) -> bool:
        return not self.span.end

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        code = status.status_code if isinstance(status, Status) else status
        if code is StatusCode.ERROR:
            described = description or (status.description if isinstance(status, Status) else None)
            self.span.error = self.span.error or described or "error"

    def record_exception(
        self,
        exception: BaseException,
        attributes: OtelAttributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The span failed, and an ``exception`` event with OpenTelemetry's attributes for it."""
        self.span.fail(exception)
        self.add_event(
            "exception",
            {
                "exception.type": type(exception).__qualname__,
                "exception.message": str(exception),
                "exception.stacktrace": "".join(traceback.format_exception(exception)),
                "exception.escaped": escaped,
                **(attributes or {}),
            },
            timestamp,
        )


class Tracer(trace.Tracer):
    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: OtelAttributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        """A child of the current span (the API's current one when it is ours, else the request's);
        outside any traced request, the API's no-op span."""
        parent_api = trace.get_current_span(context)
        parent = parent_api.span if isinstance(parent_api, Recorded) else current.get()
        if parent is None:
            return trace.INVALID_SPAN
        span = Span(parent.trace, name, parent.span_id)
        if kind is not SpanKind.INTERNAL:
            span.set("span.kind", kind.name.lower())
        recorded = Recorded(span)
        if attributes:
            recorded.set_attributes(attributes)
        return recorded

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]  # the API's own decorator type is private
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: OtelAttributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        """The span is current for the API and for our own spans alike while the block runs."""
        span = self.start_span(name, context, kind, attributes, links)
        if not isinstance(span, Recorded):
            yield span
            return
        token = current.set(span.span)
        try:
            with trace.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception):
                yield span
        finally:
            current.reset(token)


class Provider(trace.TracerProvider):
    def __init__(self) -> None:
        self._tracer = Tracer()

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return self._tracer
