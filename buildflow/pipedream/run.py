"""Running a compiled plan: in order (``call``), layer by layer in a pool (``call`` with an
``async_pool``), or on the event loop (``acall``). Each writes results into ``values``, which
starts as the call's keyword arguments."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from buildflow.pipedream.plan import Plan, Step

#: Turns a function's exception into its result, or raises (the dispatcher's error handlers).
Recover = Callable[[Exception], Any]
#: What ``acall``'s jobs share: the values by name, the error handlers, the pool of the thread trips.
CallState = tuple[dict[str, Any], Recover, "concurrent.futures.Executor | None"]


def run_in_order(steps: Sequence[Step], values: dict[str, Any], recover: Recover) -> None:
    """Call each step with the values of its requirements (also the body of ``acall``'s thread trips)."""
    for step in steps:
        try:
            values[step.name] = step.function(*[values[r] for r in step.requirements])
        except Exception as exc:
            values[step.name] = recover(exc)


def run_in_pool(plan: Plan, values: dict[str, Any], recover: Recover, pool: concurrent.futures.Executor) -> None:
    """Each layer's functions submitted to ``pool`` together, the next layer once they are done."""
    for layer in plan.layers:
        if len(layer) == 1:
            run_in_order(layer, values, recover)
            continue
        futures = [pool.submit(run_in_order, (step,), values, recover) for step in layer]
        concurrent.futures.wait(futures)
        for future in futures:
            future.result()  # the first failure, in the layer's order


def awaited(step: Step) -> Callable[[CallState], Awaitable[None]]:
    """``acall``'s job for an ``async def`` function."""
    function, requirements, name = step.function, step.requirements, step.name

    async def job(state: CallState) -> None:
        values, recover, _executor = state
        try:
            values[name] = await function(*[values[r] for r in requirements])
        except Exception as exc:
            values[name] = recover(exc)

    return job


def in_thread(steps: tuple[Step, ...]) -> Callable[[CallState], Awaitable[None]]:
    """``acall``'s job for sync functions: one trip to the pool that calls them in order."""

    def job(state: CallState) -> Awaitable[None]:
        values, recover, executor = state
        return asyncio.get_running_loop().run_in_executor(executor, run_in_order, steps, values, recover)

    return job


async def run_async(
    plan: Plan, values: dict[str, Any], recover: Recover, executor: concurrent.futures.Executor | None
) -> None:
    """Each function once its own inputs are ready (see ``buildflow.pipedream.schedule``)."""
    await plan.schedule.run(plan.jobs, (values, recover, executor))
