"""The spans of a request's plan: each dependency built, each dispatcher function, the handler,
and each trip to a thread pool. Names and attributes are worked out once per step at start-up."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from bfctl.runtime.tracing.spans import Attributes, Span, StepSpan, Trace, child, current

if TYPE_CHECKING:
    from bfctl.runtime.di.factories import Factory

__all__ = ["Span", "StepSpan", "Trace", "child", "current", "in_handler_span", "open_span"]

_DISPATCHER_PREFIX = "dispatcher function `"
T = TypeVar("T")


def dependency_span(factory: Factory) -> StepSpan:
    """``dependency <name>`` (or ``dispatcher <function>``), with its scope, whether it is async,
    and for a sync one whether it takes a pool trip of its own (blocking)."""
    attributes: Attributes
    if factory.name.startswith(_DISPATCHER_PREFIX):
        function = factory.name.removeprefix(_DISPATCHER_PREFIX).rstrip("`")
        name, attributes = f"dispatcher {function}", {"bf.dispatcher.function": function}
    else:
        name, attributes = f"dependency {factory.name}", {"bf.dependency": factory.name}
    attributes["bf.scope"] = factory.scope.name
    attributes["bf.async"] = factory.is_async
    if not factory.is_async:
        attributes["bf.blocking"] = factory.blocking
    return StepSpan(name, attributes)


def handler_span(fn: Callable[..., Any], is_async: bool) -> StepSpan:
    # a class processor's "Clicks.process", a function's name (without where it was defined)
    function = (getattr(fn, "__qualname__", None) or type(fn).__name__).rsplit("<locals>.", 1)[-1]
    return StepSpan(f"handler {function}", {"code.function": function, "bf.async": is_async})


def trip_span(steps: Sequence[Any]) -> tuple[str, Attributes]:
    """A pool trip's span: ``thread pool``, naming the steps it runs (they are its child spans as
    well); a step alone in its trip is that step's span, covering the trip, marked so."""
    if len(steps) == 1:
        return steps[0].span.name, {**steps[0].span.attributes, "bf.pool_trip": True}
    return "thread pool", {"bf.steps": ", ".join(step.span.name for step in steps), "bf.step_count": len(steps)}


def open_span(name: str, attributes: Attributes) -> Span | None:
    """A span under the current one that its opener ends, without becoming current (a pool trip)."""
    parent = current.get()
    if parent is None:
        return None
    return Span(parent.trace, name, parent.span_id, attributes)


async def in_handler_span(step: StepSpan, call: Awaitable[T]) -> T:
    """``await call``, the handler: under its trace's root (the handler runs alone there) its span
    is kept as its times on the trace (``Trace.handler``), made a span when read; elsewhere a span."""
    root = current.get()
    if not isinstance(root, Trace):
        if root is None:
            return await call
        with child(step.name, step.attributes):
            return await call
    error = None
    start = time.perf_counter_ns()
    try:
        return await call
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        raise
    finally:
        root.handled(step, start, time.perf_counter_ns(), error)
