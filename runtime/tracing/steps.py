"""The spans of a request's plan: each dependency built, each dispatcher function, the handler,
and each trip to a thread pool. Names and attributes are worked out once per step at start-up."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bfctl.runtime.tracing.spans import Attributes, Span, child, current

if TYPE_CHECKING:
    from bfctl.runtime.di.factories import Factory

__all__ = ["Span", "StepSpan", "child", "close_span", "current", "open_span"]

_DISPATCHER_PREFIX = "dispatcher function `"


@dataclasses.dataclass(frozen=True, slots=True)
class StepSpan:
    name: str
    attributes: Attributes


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


def trip_attributes(steps: Sequence[Any]) -> Attributes:
    """A pool trip names the steps it runs (they are its child spans as well)."""
    return {"bf.steps": ", ".join(step.span.name for step in steps), "bf.step_count": len(steps)}


def open_span(name: str, attributes: Attributes) -> Span | None:
    """A span under the current one that ends later (``close_span``), without becoming current."""
    parent = current.get()
    if parent is None:
        return None
    return Span(parent.trace, name, parent.span_id, attributes)


def close_span(span: Span, future: asyncio.Future[Any]) -> None:
    """Ends ``span`` when ``future`` is done (a done callback), failed as the future failed."""
    span.end = time.perf_counter_ns()
    if not future.cancelled() and (error := future.exception()) is not None:
        span.fail(error)
