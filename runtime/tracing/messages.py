"""A consumer's message as a trace: begun when its batch is pulled, handled under its root span,
and finished once its acknowledgement (or nack) has been sent, which is its last span."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from bfctl.runtime.sources.base import Delivery
from bfctl.runtime.tracing.recorder import Recorder
from bfctl.runtime.tracing.spans import Span, Trace, current


def begin(recorder: Recorder, name: str, source: str, batch: Sequence[Delivery]) -> list[Trace | None]:
    """A trace per message (continuing the producer's when its attributes carry ``traceparent``)."""
    traces: list[Trace | None] = []
    for delivery in batch:
        trace = recorder.begin(name, "message", delivery.attributes)
        if trace is not None:
            attributes: dict[str, str | int | float | bool] = {"bf.source": source}
            if delivery.key:
                attributes["bf.message"] = delivery.key
            if delivery.delivery_attempt is not None:
                attributes["bf.delivery_attempt"] = delivery.delivery_attempt
            trace.attributes = attributes
        traces.append(trace)
    return traces


async def handled_in(trace: Trace | None, handle: Awaitable[bool]) -> bool:
    """``handle`` (one message's) with the message's root span current."""
    if trace is None:
        return await handle
    token = current.set(trace)
    try:
        ok = await handle
    finally:
        current.reset(token)
    if not ok:
        trace.status = "error"
    return ok


def failed(error: BaseException) -> None:
    """Marks the current message's trace failed, on its root span (the span that raised has it too)."""
    span = current.get()
    if span is not None:
        root = span.trace
        root.status = "error"
        root.error = root.error or f"{type(error).__name__}: {error}"


async def settled(
    recorder: Recorder, traces: Sequence[Trace | None], what: str, settle: Callable[[], Awaitable[None]]
) -> None:
    """``settle()`` (an ack or nack of these messages) in a span of each trace, then each trace finished."""
    spans = [Span(t, what, t.span_id) for t in traces if t is not None]
    try:
        await settle()
    except BaseException as e:
        for span in spans:
            span.fail(e)
        raise
    finally:
        now = time.perf_counter_ns()
        for span in spans:
            span.end = now
            trace = span.trace
            trace.end = now
            if trace.status == "ok" and what == "nack":
                trace.status = "error"
            recorder.finish(trace)
