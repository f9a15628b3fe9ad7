"""The compiled plan of one ``(name, given keyword names)`` call: what runs, in which order and layers.

A plan depends only on the target's name and the *names* of the keyword arguments given at
call time (never their values), so it is worked out once and reused by every such call, the
way a handler's plan is built once at start-up. ``Plan`` is also the form in which other code
(the flow integration) reads a dispatcher's graph: ``layers`` lists what can run together.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from buildflow.pipedream.run import CallState, awaited, in_thread
from buildflow.pipedream.schedule import Job, Schedule, batch


def is_async(function: Callable[..., Any]) -> bool:
    """Whether ``function`` must be awaited: an ``async def`` function, or an object whose
    ``__call__`` is one (``Step.is_async``, and how a flow's plan decides it too)."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(type(function).__call__)


class Step(NamedTuple):
    """One function to run: its result is stored under ``name``; it is called with the values of
    ``requirements``, positionally and in that order; ``is_async`` when it must be awaited."""

    name: str
    function: Callable[..., Any]
    requirements: tuple[str, ...]
    is_async: bool


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """Everything ``call``/``acall`` need for ``name`` when the keyword arguments ``given`` are passed.

    - ``order``: every function to run, dependencies before dependents, in the depth-first order
      of ``resolve_dependency_graph`` (what ``call`` runs one after another). Names in ``given``
      are never in it: their values are used instead.
    - ``layers``: the same steps grouped by depth: a step's requirements are all given or produced
      by earlier layers, so the steps of one layer are independent of each other. Layer 0 needs
      only given names. The last layer is ``(target,)`` (empty plan when ``name`` is given).
    - ``inputs``: the given names the plan reads (``name`` itself when it is given).
    - ``schedule`` and ``jobs``: how ``acall`` runs it, each function once its own inputs are ready
      (``async def`` ones awaited; sync ones batched in one trip to the thread pool where no async
      work comes between them, or each in its own trip when the dispatcher has an ``async_pool``).
    """

    name: str
    given: frozenset[str]
    order: tuple[Step, ...]
    layers: tuple[tuple[Step, ...], ...]
    inputs: frozenset[str]
    schedule: Schedule[CallState]
    jobs: tuple[Job[CallState], ...]
    #: The dispatchers' change counter when compiled: a later ``add`` anywhere makes the plan stale.
    generation: int
    #: The first ``async def`` step in ``order``, if any (``call`` cannot run those).
    first_async: Step | None


def build_plan(
    name: str, given: frozenset[str], order: Sequence[Step], generation: int, *, concurrent_sync: bool = False
) -> Plan:
    """Group ``order`` (dependencies first) into layers and ``acall``'s jobs; ``concurrent_sync``: each
    sync function in a trip of its own (the dispatcher has a pool to run them at once)."""
    layer_of: dict[str, int] = {}
    layers: list[list[Step]] = []
    for step in order:
        depth = 1 + max((layer_of[r] for r in step.requirements if r in layer_of), default=-1)
        layer_of[step.name] = depth
        if depth == len(layers):
            layers.append([])
        layers[depth].append(step)
    index = {step.name: i for i, step in enumerate(order)}
    jobs, job_deps = batch(
        [[index[r] for r in step.requirements if r in index] for step in order],
        [not (step.is_async or concurrent_sync) for step in order],
    )
    inputs = {r for step in order for r in step.requirements if r in given}
    if name in given:
        inputs.add(name)
    return Plan(
        name=name,
        given=given,
        order=tuple(order),
        layers=tuple(tuple(layer) for layer in layers),
        inputs=frozenset(inputs),
        schedule=Schedule(job_deps, [not order[steps[0]].is_async for steps in jobs]),
        jobs=tuple(_job(tuple(order[i] for i in steps)) for steps in jobs),
        generation=generation,
        first_async=next((step for step in order if step.is_async), None),
    )


def _job(steps: tuple[Step, ...]) -> Job[CallState]:
    """An ``async def`` function awaited, or sync ones (one, or a batch) in one trip to the pool."""
    return awaited(steps[0]) if steps[0].is_async else in_thread(steps)
