"""Running a compiled plan: in order (``call``), layer by layer in a pool (``call`` with an
``async_pool``), or on the event loop (``acall``). Each writes results into ``values``, which
starts as the call's keyword arguments."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from buildflow.pipedream.plan import Plan, Step

#: Turns a function's exception into its result, or raises (the dispatcher's error handlers).
Recover = Callable[[Exception], Any]


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


async def _awaited(step: Step, values: dict[str, Any], recover: Recover) -> None:
    try:
        values[step.name] = await step.function(*[values[r] for r in step.requirements])
    except Exception as exc:
        values[step.name] = recover(exc)


async def run_async(
    plan: Plan, values: dict[str, Any], recover: Recover, executor: concurrent.futures.Executor | None
) -> None:
    """Stage by stage: its ``async def`` functions gathered, its sync ones in one trip meanwhile."""
    loop = asyncio.get_running_loop()
    for stage in plan.stages:
        if not stage.in_thread and len(stage.awaited) == 1:
            await _awaited(stage.awaited[0], values, recover)
            continue
        jobs: list[Awaitable[None]] = [_awaited(step, values, recover) for step in stage.awaited]
        if stage.in_thread:
            jobs.append(loop.run_in_executor(executor, run_in_order, stage.in_thread, values, recover))
        if len(jobs) == 1:
            await jobs[0]
            continue
        for outcome in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome  # the first failure, in the stage's order, once every job has finished
