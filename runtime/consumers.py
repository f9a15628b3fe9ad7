"""One consumer compiled: its handler, the conversion of its input, and where its rows go.

Everything that needs reflection happens in ``__init__`` (start-up) and ``start`` (worker
start). ``handle`` takes one pulled batch and says, per message, whether everything the handler
returned for it is durable in the sink: only those are acknowledged; a message whose handler
raised, whose input did not convert or whose rows were refused or not written fails alone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from bfctl.runtime.collectors import CollectorOutput
from bfctl.runtime.conversion import MessageConverter, message_converter
from bfctl.runtime.di.context import RequestContext
from bfctl.runtime.di.dispatch import DispatcherResults
from bfctl.runtime.di.graph import Arg, Graph, Node, walk
from bfctl.runtime.di.resolver import Invoke, RequestPlan, not_started
from bfctl.runtime.errors import StartupError, one_line
from bfctl.runtime.outcomes import reason
from bfctl.runtime.parameters import Kind, Source, parameters
from bfctl.runtime.processors import built, call_hook, process_fn
from bfctl.runtime.redelivery import FailureLog
from bfctl.runtime.sinks.registry import SinkRegistry
from bfctl.runtime.sources.base import Delivery, source_name
from bfctl.runtime.tracing import messages
from bfctl.runtime.tracing.recorder import Recorder
from bfctl.runtime.tracing.sinks import sink_write_span
from bfctl.runtime.tracing.spans import Trace, child, current
from buildflow.dependencies.scopes import Scope
from buildflow.pipedream import Dispatcher
from buildflow.pipedream.plan import is_async
from buildflow.processors import Consumer

log = logging.getLogger("buildflow.runtime")

#: Messages asked for per pull when the source does not say (its ``batch_size``).
DEFAULT_PULL_SIZE = 100
#: What a handler's plan is given for the request it never has (nothing in it asks: checked at start-up).
_NO_REQUEST = RequestContext(None)

#: Per message of a batch: the rows for the sink, or why there are none.
_Result = list[Any] | BaseException


class CompiledConsumer:
    def __init__(
        self, consumer: Consumer, graph: Graph, sinks: SinkRegistry, dispatcher: Dispatcher | None = None
    ) -> None:
        self.consumer = consumer
        self.name = consumer.name
        source = consumer.source_primitive
        self.owner = f"consumer `{self.name}` ({source_name(source)})"
        self.options = consumer.processor_options
        size = getattr(source, "batch_size", None)
        self.pull_size = size if isinstance(size, int) and size > 0 else DEFAULT_PULL_SIZE
        target: Any = consumer.original_process_fn_or_class
        self.target = target
        self.is_class, fn = process_fn(target, self.owner, "consumer")
        self.is_async = is_async(fn)
        self.output = CollectorOutput(sinks, consumer.sink_primitive, fn, consumer.batch_options, role="consumer")
        results = DispatcherResults(dispatcher, graph, self.owner) if dispatcher is not None else None
        args, self.param, annotation = self._parameters(fn, graph, results)
        try:
            self.convert: MessageConverter = message_converter(
                annotation, bool(getattr(source, "include_attributes", False))
            )
        except TypeError as e:
            raise StartupError(f"{self.owner}: parameter `{self.param}`: {e}") from None
        self.plan = RequestPlan(args, self.is_async)
        self._instance: Any = None
        self._invoke: Invoke = not_started
        #: A sync handler whose arguments are all bound (only the message varies): a whole batch
        #: goes to the pool in one trip.
        self._bound: Callable[..., Any] | None = None
        #: Messages handled (their rows durable) and failed, in this worker.
        self.handled = 0
        self.failed = 0
        #: What begins and finishes the traces of its messages, when this worker traces.
        self.recorder: Recorder | None = None
        self._submit: Callable[..., Awaitable[Any]] | None = None

    def _parameters(
        self, fn: Callable[..., Any], graph: Graph, results: DispatcherResults | None
    ) -> tuple[list[Arg], str, Any]:
        """The handler's dependencies (an unannotated parameter named like a dispatcher result is
        that result), and the name and annotation of its one message parameter."""
        args: list[Arg] = []
        messages: list[tuple[str, Any]] = []
        found = parameters(
            fn,
            self.owner,
            method=self.is_class,
            results=results.provides if results is not None else None,
            messages=True,
        )
        for param in found:
            if param.kind is Kind.REQUEST:
                raise StartupError(
                    f"{self.owner}: parameter `{param.name}` asks for the request; a consumer handles messages, "
                    "it has no request"
                )
            if param.kind is Kind.DEPENDENCY:
                args.append((param.name, graph.require(param.target, self.owner, Scope.PROCESS)))
            elif param.kind is Kind.RESULT:
                assert results is not None
                args.append((param.name, results.node(param.name)))
            else:  # Kind.MESSAGE: read with ``messages``, nothing else is left
                messages.append((param.name, param.annotation))
        if len(messages) != 1:
            names = ", ".join(f"`{name}`" for name, _ in messages) or "none"
            raise StartupError(
                f"{self.owner}: a consumer takes exactly one parameter for the message besides its "
                f"dependencies; it has {len(messages)} ({names})"
            )
        _refuse_request_dependencies(args, self.owner)
        return args, *messages[0]

    # -- worker life --------------------------------------------------------------------------
    async def start(self, loop: asyncio.AbstractEventLoop, pool: Executor, recorder: Recorder | None = None) -> None:
        """Build a class-based consumer and run its ``setup()`` (once per worker); with a
        ``recorder``, each message is traced (the pull loop begins and finishes its trace)."""
        fn = self.target
        if self.is_class:
            try:
                self._instance = await built(self.target, loop, pool)
            except Exception as e:
                raise StartupError(f"{self.owner}: building it or its setup() failed: {one_line(e)}") from e
            fn = self._instance.process
        self.plan.finalize(fn)
        traced = recorder is not None
        self.recorder = recorder
        self.output.start(traced)
        self._invoke = self.plan.invoker(loop, pool, traced=traced)
        self._bound = None if self.is_async else self.plan.bound()
        batcher = self.output.batcher
        if batcher is not None:
            self._submit = sink_write_span(batcher) if traced else batcher.submit
        self._loop, self._pool = loop, pool

    async def stop(self) -> None:
        """``teardown()`` of a class-based consumer (BuildFlow never called it); errors are logged."""
        teardown = getattr(self._instance, "teardown", None)
        if teardown is None:  # also when the worker never started it
            return
        try:
            await call_hook(teardown, self._loop, self._pool)
        except Exception:
            log.exception("%s: teardown() failed", self.owner)

    # -- per batch -----------------------------------------------------------------------------
    async def handle(self, batch: list[Delivery], traces: list[Trace | None] | None = None) -> list[bool]:
        """Run the handler on each message and write its rows; per message, whether it is done.
        ``traces``: each message's, begun by the pull loop (when this worker traces)."""
        if self._bound is not None and traces is not None:
            results = await self._loop.run_in_executor(self._pool, self._call_all_traced, self._bound, batch, traces)
            written = (
                messages.handled_in(t, self._write(d, r)) for d, r, t in zip(batch, results, traces, strict=True)
            )
            return list(await asyncio.gather(*written))
        if traces is not None:
            handled = (messages.handled_in(t, self._handle_one(d)) for d, t in zip(batch, traces, strict=True))
            return list(await asyncio.gather(*handled))
        if self._bound is not None:  # the whole batch in one trip to the pool, its rows in one submission
            results = await self._loop.run_in_executor(self._pool, self._call_all, self._bound, batch)
            return await self._write_all(batch, results)
        if len(batch) == 1:
            return await self._write_all(batch, [await self._result(batch[0])])
        # each message's handler concurrently (a task each), their rows in one submission
        return await self._write_all(batch, list(await asyncio.gather(*(self._result(d) for d in batch))))

    def _call_all(self, fn: Callable[..., Any], batch: list[Delivery]) -> list[_Result]:
        """A sync handler with bound arguments, in the pool: each message converted, handled and made rows."""
        param, convert, rows = self.param, self.convert, self.output.rows
        results: list[_Result] = []
        for delivery in batch:
            try:
                results.append(rows(fn(**{param: convert(delivery)})))
            except Exception as e:
                results.append(e)
        return results

    def _call_all_traced(
        self, fn: Callable[..., Any], batch: list[Delivery], traces: list[Trace | None]
    ) -> list[_Result]:
        """``_call_all`` in the same one trip, each message's call a handler span of its trace."""
        step = self.plan.handler.span
        assert step is not None  # named when the plan was finalized
        results: list[_Result] = []
        for delivery, trace in zip(batch, traces, strict=True):
            token = current.set(trace) if trace is not None else None
            try:
                with child(step.name, step.attributes) as span:
                    result = self._call_all(fn, [delivery])[0]
                    if span is not None and isinstance(result, BaseException):
                        span.fail(result)
            finally:
                if token is not None:
                    current.reset(token)
            results.append(result)
        return results

    async def _handle_one(self, delivery: Delivery) -> bool:
        return await self._write(delivery, await self._result(delivery))

    async def _result(self, delivery: Delivery) -> _Result:
        """The handler's rows for ``delivery``, or why there are none."""
        try:
            return self.output.rows(await self._invoke(_NO_REQUEST, {self.param: self.convert(delivery)}))
        except Exception as e:
            return e

    async def _write_all(self, batch: list[Delivery], results: list[_Result]) -> list[bool]:
        """``_write`` of a whole batch: the rows of every message go to the sink in one
        submission, each message acknowledged only when its own rows are durable."""
        batcher = self.output.batcher
        done = [False] * len(batch)
        waiting: list[int] = []
        rows: list[list[Any]] = []
        for i, result in enumerate(results):
            if isinstance(result, BaseException):
                self._failed(batch[i], result)
            elif result and batcher is not None:
                waiting.append(i)
                rows.append(result)
            else:
                done[i] = True
        if batcher is not None and rows:
            for i, fate in zip(waiting, await batcher.submit_each(rows, hold=True), strict=True):
                if isinstance(fate, Exception):
                    self._failed(batch[i], fate)
                else:
                    done[i] = True
        self.handled += sum(done)
        return done

    async def _write(self, delivery: Delivery, result: _Result) -> bool:
        if isinstance(result, BaseException):
            return self._failed(delivery, result)
        submit = self._submit
        if result and submit is not None:
            try:  # held back until the sink catches up: this loop pulls nothing meanwhile
                await submit(result, hold=True)
            except Exception as e:
                return self._failed(delivery, e)
        self.handled += 1
        return True

    @functools.cached_property
    def failures(self) -> FailureLog:
        """Its failed messages, logged once each and counted (the pull loops give it the source's backoff)."""
        return FailureLog(self.owner)

    def _failed(self, delivery: Delivery, error: BaseException) -> bool:
        if self.recorder is not None:
            messages.failed(error)
        self.failed += 1
        self.failures.failed(delivery, reason(error))
        return False


def _refuse_request_dependencies(args: list[Arg], owner: str) -> None:
    """A dependency that needs the request (headers, a user from a token) cannot serve a consumer."""
    for node in walk([arg for _, arg in args if isinstance(arg, Node)]):
        for name, arg in node.args:
            if isinstance(arg, Source):
                raise StartupError(
                    f"{owner}: dependency `{node.name}` asks for the request (`{name}`); a consumer handles "
                    "messages, it has no request"
                )
