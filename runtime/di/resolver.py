"""The compiled per-request plan of one handler (its PROCESS-scope dependencies).

Worked out once at start-up (``buildflow.pipedream.schedule``): each dependency starts as soon
as its own inputs are ready, so a request takes its critical path; a chain of steps runs inline,
and only a step that must wait on another chain costs a task. Sync dependencies, and a sync
handler, share a trip to the thread pool where no async one comes between them: a handler whose
sync dependencies do not wait on async ones (nearly all) takes at most one trip. A sync one
marked blocking (or a function of a dispatcher with a pool) takes a trip of its own, at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, NamedTuple

from bfctl.runtime.di.context import RequestContext
from bfctl.runtime.di.factories import Teardown, run_sync_teardowns, run_teardowns
from bfctl.runtime.di.graph import Arg, Node, RequestValue, walk
from bfctl.runtime.parameters import Source
from bfctl.runtime.tracing import steps as tracing
from buildflow.dependencies.scopes import Scope
from buildflow.pipedream.schedule import Job, Schedule, batch

Make = Callable[[dict[str, Any], list[Teardown]], Any]
#: One call of a processor: the request's context (None when nothing asks for it) and its parsed
#: inputs (for a consumer, the message) in, the processor's result out.
Invoke = Callable[[Any, dict[str, Any]], Awaitable[Any]]


@dataclasses.dataclass(eq=False)
class Step:
    """One thing to build (a dependency or the handler call) with where its arguments come from."""

    slot: int
    is_async: bool
    make: Make
    args: list[Arg]
    takes_params: bool = False
    blocking: bool = False
    executor: Executor | None = None
    consts: dict[str, Any] = dataclasses.field(default_factory=dict)
    slots: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    sources: list[tuple[str, Source]] = dataclasses.field(default_factory=list)
    values: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: The span a traced worker records for it: name and attributes.
    span: tracing.StepSpan | None = None

    def bind(self, slot_of: dict[int, int]) -> None:
        """Split arguments into constants (built REPLICA/GLOBAL values) and per-request ones."""
        for name, arg in self.args:
            if isinstance(arg, Source):
                self.sources.append((name, arg))
            elif isinstance(arg, RequestValue):
                self.values.append((name, arg.name))
            elif arg.scope is Scope.PROCESS:
                self.slots.append((name, slot_of[id(arg)]))
            else:
                self.consts[name] = arg.value

    def kwargs(self, vals: list[Any], ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        kw = self.consts.copy()
        for name, slot in self.slots:
            kw[name] = vals[slot]
        for name, source in self.sources:
            kw[name] = ctx.get(source)
        for name, value in self.values:
            kw[name] = params[value]
        if self.takes_params:
            kw.update(params)
        return kw


class State(NamedTuple):
    """What the jobs of one request share."""

    vals: list[Any]
    ctx: RequestContext
    params: dict[str, Any]
    tds: list[Teardown]
    loop: asyncio.AbstractEventLoop
    pool: Executor | None


async def not_started(ctx: Any, params: dict[str, Any]) -> Any:
    """The invoke of a processor whose worker has not started it."""
    raise RuntimeError("the processor's start() was not called")


def _handler_make(fn: Callable[..., Any]) -> Make:
    return lambda kw, _tds: fn(**kw)


class RequestPlan:
    def __init__(self, handler_args: list[Arg], handler_is_async: bool) -> None:
        roots = [arg for _, arg in handler_args if isinstance(arg, Node)]
        nodes = [n for n in walk(roots) if n.scope is Scope.PROCESS]
        self.size = len(nodes) + 1
        self.steps = [
            Step(
                i,
                n.factory.is_async,
                n.factory.create_async if n.factory.is_async else n.factory.create_sync,
                n.args,
                blocking=n.factory.blocking and not n.factory.is_async,
                executor=n.factory.executor,
                span=tracing.dependency_span(n.factory),
            )
            for i, n in enumerate(nodes)
        ]
        self.handler = Step(len(nodes), handler_is_async, _handler_make(lambda **kw: None), handler_args, True)
        self._slot_of = {id(n): i for i, n in enumerate(nodes)}
        steps = [*self.steps, self.handler]
        groups, needs = batch(
            [
                [self._slot_of[id(a)] for _, a in s.args if isinstance(a, Node) and a.scope is Scope.PROCESS]
                for s in steps
            ],
            [not (s.is_async or s.blocking) for s in steps],
        )
        self.schedule: Schedule[State] = Schedule(needs, [not steps[group[0]].is_async for group in groups])
        self.jobs = tuple(self._job([steps[i] for i in group]) for group in groups)
        self._groups = [[steps[i] for i in group] for group in groups]
        self.has_dependencies = bool(nodes)
        self._fn: Callable[..., Any] | None = None

    def _job(self, steps: list[Step]) -> Job[State]:
        """An async step awaited, or sync ones in one trip to their pool."""
        if steps[0].is_async:
            step = steps[0]

            async def awaited(state: State) -> None:
                state.vals[step.slot] = await step.make(step.kwargs(state.vals, state.ctx, state.params), state.tds)

            return awaited
        executor = steps[0].executor

        def in_thread(state: State) -> Awaitable[None]:
            return state.loop.run_in_executor(
                executor or state.pool, self._run_sync, steps, state.vals, state.ctx, state.params, state.tds
            )

        return in_thread

    def _traced_job(self, steps: list[Step]) -> Job[State]:
        """``_job`` with spans: each step's, and a sync group's trip to the pool (its wait in
        the queue shows as the gap before the first step's span). A step alone in its trip is
        one span that covers the trip (``bf.pool_trip``), not two."""
        if steps[0].is_async:
            step = steps[0]
            what = step.span
            assert what is not None
            if step is self.handler:

                async def handler_awaited(state: State) -> None:
                    made = step.make(step.kwargs(state.vals, state.ctx, state.params), state.tds)
                    state.vals[step.slot] = await tracing.in_handler_span(what, made)

                return handler_awaited
            current, now, name, attributes = tracing.current, time.perf_counter_ns, what.name, what.attributes

            async def awaited(state: State) -> None:
                # tracing.child() inlined: a context manager's three calls on every async step
                made = step.make(step.kwargs(state.vals, state.ctx, state.params), state.tds)
                parent = current.get()
                if parent is None:
                    state.vals[step.slot] = await made
                    return
                span = tracing.Span(parent.trace, name, parent.span_id, attributes)
                token = current.set(span)
                try:
                    state.vals[step.slot] = await made
                except BaseException as e:
                    span.fail(e)
                    raise
                finally:
                    span.end = now()
                    current.reset(token)

            return awaited
        executor = steps[0].executor
        alone = len(steps) == 1
        trip_name, trip_attributes = tracing.trip_span(steps)
        run = self._run_sync_traced

        def in_thread(state: State) -> Awaitable[None]:
            trip = tracing.open_span(trip_name, trip_attributes)
            pool = executor or state.pool
            if getattr(pool, "copies_context", False):  # a traced worker's own pool
                return state.loop.run_in_executor(
                    pool, run, trip, alone, steps, state.vals, state.ctx, state.params, state.tds
                )
            # the trip's span is made current in the thread: in a copy of the request's context
            context = contextvars.copy_context()
            return state.loop.run_in_executor(
                pool, context.run, run, trip, alone, steps, state.vals, state.ctx, state.params, state.tds
            )

        return in_thread

    def _run_sync_traced(
        self,
        trip: tracing.Span | None,
        alone: bool,
        steps: list[Step],
        vals: list[Any],
        ctx: RequestContext,
        params: dict[str, Any],
        tds: list[Teardown],
    ) -> None:
        """``_run_sync`` in the pool, each step in its span under the trip's (this runs in a copy
        of the request's context, so setting the current span here stays with this call), or
        ``alone``, the trip's span the step's; the trip ends when its steps have run (the hop back
        to the loop is not in it)."""
        if trip is None:
            return self._run_sync(steps, vals, ctx, params, tds)
        tracing.current.set(trip)
        try:
            self._run_sync(steps, vals, ctx, params, tds, traced=not alone)
        except BaseException as e:
            trip.fail(e)
            raise
        finally:
            trip.end = time.perf_counter_ns()

    def finalize(self, handler: Callable[..., Any]) -> None:
        """Bind the handler and the built REPLICA/GLOBAL values (once per worker)."""
        self._fn = handler
        self.handler.make = _handler_make(handler)
        self.handler.span = tracing.handler_span(handler, self.handler.is_async)
        for step in (*self.steps, self.handler):
            step.consts.clear()
            step.slots.clear()
            step.sources.clear()
            step.values.clear()
            step.bind(self._slot_of)

    def bound(self) -> Callable[..., Any] | None:
        """The handler with its REPLICA/GLOBAL arguments bound, when nothing else it takes is
        made per call (no PROCESS dependency, nothing from the request): then a caller may call
        it with the inputs alone, e.g. a sync consumer a whole batch in one trip to the pool."""
        if self._fn is None:
            raise RuntimeError("RequestPlan.finalize() was not called")
        if self.has_dependencies or self.handler.sources:
            return None
        return functools.partial(self._fn, **self.handler.consts) if self.handler.consts else self._fn

    def invoker(
        self, loop: asyncio.AbstractEventLoop, pool: Executor | None, *, always_plan: bool = False, traced: bool = False
    ) -> Invoke:
        """How every processor (endpoint, collector, consumer) is called: the one place that
        decides which arguments it gets, so that no kind of processor can miss some. The
        cheapest path that passes them all: the whole plan when a dependency is made per call,
        else the handler with its bound values, awaited or in one trip to the pool. ``traced``:
        each step in a span, and a handler called directly in one span of its own (its pool
        trip included); a worker that traces nothing pays none of it."""
        if traced and (always_plan or self.has_dependencies):
            jobs = tuple(self._traced_job(group) for group in self._groups)

            async def through_traced_plan(ctx: RequestContext, params: dict[str, Any]) -> Any:
                return await self.run(ctx, params, loop, pool, jobs)

            return through_traced_plan
        invoke = self._untraced(loop, pool, always_plan)
        if not traced:
            return invoke
        step_span = self.handler.span
        assert step_span is not None  # named by finalize()
        in_handler_span = tracing.in_handler_span
        # an async handler whose arguments are all bound is called here, not through ``direct``
        awaited = self.bound() if self.handler.is_async else None

        def in_span(ctx: Any, params: dict[str, Any]) -> Awaitable[Any]:
            return in_handler_span(step_span, awaited(**params) if awaited is not None else invoke(ctx, params))

        return in_span

    def _untraced(self, loop: asyncio.AbstractEventLoop, pool: Executor | None, always_plan: bool) -> Invoke:
        if always_plan or self.has_dependencies:

            async def through_plan(ctx: RequestContext, params: dict[str, Any]) -> Any:
                return await self.run(ctx, params, loop, pool)

            return through_plan
        fn, step, bound = self._fn, self.handler, self.bound()
        assert fn is not None  # bound() checked it
        if step.is_async:
            if bound is not None:

                async def direct(ctx: Any, params: dict[str, Any]) -> Any:
                    return await bound(**params)

                return direct

            async def direct_ctx(ctx: RequestContext, params: dict[str, Any]) -> Any:
                return await fn(**step.kwargs([], ctx, params))

            return direct_ctx
        if bound is not None:

            def run_in_pool(ctx: Any, params: dict[str, Any]) -> Awaitable[Any]:
                return loop.run_in_executor(pool, functools.partial(bound, **params) if params else bound)

            return run_in_pool

        def run_in_pool_ctx(ctx: RequestContext, params: dict[str, Any]) -> Awaitable[Any]:
            return loop.run_in_executor(pool, functools.partial(fn, **step.kwargs([], ctx, params)))

        return run_in_pool_ctx

    async def run(
        self,
        ctx: RequestContext,
        params: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        pool: Executor | None,
        jobs: tuple[Job[State], ...] | None = None,
    ) -> Any:
        vals: list[Any] = [None] * self.size
        tds: list[Teardown] = []
        try:
            await self.schedule.run(jobs or self.jobs, State(vals, ctx, params, tds, loop, pool))
            return vals[self.handler.slot]
        finally:
            if tds:
                await run_teardowns(tds, lambda fn: loop.run_in_executor(pool, fn))

    def _run_sync(
        self,
        steps: list[Step],
        vals: list[Any],
        ctx: RequestContext,
        params: dict[str, Any],
        tds: list[Teardown],
        traced: bool = False,
    ) -> None:
        try:
            for step in steps:
                if traced:
                    assert step.span is not None
                    with tracing.child(step.span.name, step.span.attributes):
                        vals[step.slot] = step.make(step.kwargs(vals, ctx, params), tds)
                else:
                    vals[step.slot] = step.make(step.kwargs(vals, ctx, params), tds)
        finally:
            if steps[-1] is self.handler:  # tear down sync dependencies in this same trip
                tail: list[Callable[[], Any]] = []
                while tds and not tds[-1][0]:
                    tail.append(tds.pop()[1])
                run_sync_teardowns(tail)
