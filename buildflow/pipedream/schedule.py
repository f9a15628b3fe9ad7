"""Running a graph of jobs so that each starts as soon as its own inputs are ready.

Pipedream's gevent back end spawned every function at once and each waited only for what it used,
so a call took its critical path. Here that is worked out once per graph: the jobs are cut into
*chains*, paths along which each job needs the one before it. The calling coroutine runs the chain
that ends in the target inline; every other chain is a task started at once. A job waits (on a
future) only for inputs made by another chain, so a call takes its critical path, and a graph that
is one chain (a single step per layer) costs neither a task nor a future.

Cheap sync functions are *batched*: those that need no async work between them share one trip to
the thread pool (a hop per function would cost more than they do). ``batch`` groups them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

S = TypeVar("S")

#: One job of a schedule: given the call's state, an awaitable that stores the job's result(s) in it.
Job = Callable[[S], Awaitable[Any]]


def batch(deps: Sequence[Sequence[int]], batched: Sequence[bool]) -> tuple[list[list[int]], list[list[int]]]:
    """Group steps (in dependency order, the target last) into jobs: each unbatched step alone, the
    batched ones by *epoch* (the number of unbatched steps a batched step waits on after a batched
    one), so that a batch never waits inside its trip. Returns the jobs' steps and the jobs' own
    dependencies, both in dependency order (the target's job last)."""
    epoch: list[int] = []
    for i, needs in enumerate(deps):
        epoch.append(max((epoch[d] + (batched[d] and not batched[i]) for d in needs), default=0))
    key_of: dict[tuple[bool, int], int] = {}
    members: list[list[int]] = []
    job_of: list[int] = []
    for i in range(len(deps)):
        key = (True, epoch[i]) if batched[i] else (False, i)
        if key not in key_of:
            key_of[key] = len(members)
            members.append([])
        members[key_of[key]].append(i)
        job_of.append(key_of[key])
    needs_of = [sorted({job_of[d] for i in steps for d in deps[i]} - {job}) for job, steps in enumerate(members)]
    order = _topological(needs_of)
    new = {old: position for position, old in enumerate(order)}
    return [members[old] for old in order], [[new[d] for d in needs_of[old]] for old in order]


def _topological(needs: list[list[int]]) -> list[int]:
    """Jobs in an order where each comes after what it needs (the earliest first where free)."""
    order: list[int] = []
    placed: set[int] = set()

    def place(job: int) -> None:
        if job in placed:
            return
        placed.add(job)
        for dep in needs[job]:
            place(dep)
        order.append(job)

    for job in range(len(needs)):
        place(job)
    return order


@dataclasses.dataclass(frozen=True)
class Link:
    """A job of a chain: the futures it waits on first, and the one it resolves (-1: none needed)."""

    job: int
    waits: tuple[int, ...]
    signal: int


class Schedule(Generic[S]):
    """The chains of a graph of jobs; ``deps[i]`` are the jobs job ``i`` needs, jobs in dependency
    order, the target last; every job must lead to the target.

    ``eager[i]``: job ``i`` is running once called (it returns a future, e.g. a trip to a thread
    pool). Such a job that needs nothing is started at once, and its future is what waits on it:
    it costs no task.
    """

    def __init__(self, deps: Sequence[Sequence[int]], eager: Sequence[bool] = ()) -> None:
        depth: list[int] = []
        for needs in deps:
            depth.append(1 + max((depth[d] for d in needs), default=0))
        chain_of = [-1] * len(deps)
        chains: list[list[int]] = []
        for start in reversed(range(len(deps))):
            if chain_of[start] != -1:
                continue
            chain: list[int] = []
            job: int | None = start
            while job is not None:
                chain_of[job] = len(chains)
                chain.append(job)
                free = [d for d in deps[job] if chain_of[d] == -1]
                job = max(free, key=lambda d: (depth[d], d)) if free else None  # the likelier critical path
            chains.append(chain[::-1])
        signal_of: dict[int, int] = {}
        for job, needs in enumerate(deps):
            for d in needs:
                if chain_of[d] != chain_of[job] and d not in signal_of:
                    signal_of[d] = len(signal_of)
        self.chains = tuple(
            tuple(
                Link(
                    job,
                    tuple(dict.fromkeys(signal_of[d] for d in deps[job] if chain_of[d] != chain_of[job])),
                    signal_of.get(job, -1),
                )
                for job in chain
            )
            for chain in chains
        )
        self.signals = len(signal_of)
        started = [
            c for c in self.chains[1:] if len(c) == 1 and not c[0].waits and c[0].job < len(eager) and eager[c[0].job]
        ]
        #: The jobs started at once, with the signal each one's future stands for.
        self.started = tuple((chain[0].job, chain[0].signal) for chain in started)
        self.tasks = tuple(c for c in self.chains[1:] if c not in started)
        self.fresh = tuple(sorted(set(signal_of.values()) - {signal for _, signal in self.started}))
        #: The jobs in order when the graph is a single chain (no task, no future), else None.
        self.inline = tuple(link.job for chain in self.chains for link in chain) if len(self.chains) <= 1 else None

    async def run(self, jobs: Sequence[Job[S]], state: S) -> None:
        """Run every job, each once the jobs it needs are done; on a failure, the first one the
        target's chain meets is raised once every chain has stopped."""
        if self.inline is not None:
            for job in self.inline:
                await jobs[job](state)
            return
        loop = asyncio.get_running_loop()
        signals: list[Any] = [None] * self.signals
        for signal in self.fresh:
            signals[signal] = loop.create_future()
        for job, signal in self.started:
            signals[signal] = jobs[job](state)
        tasks = [loop.create_task(_chain(chain, jobs, state, signals)) for chain in self.tasks]
        try:
            await _chain(self.chains[0], jobs, state, signals)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                for task in tasks:
                    task.cancel()
            running = [*tasks, *(signals[signal] for _, signal in self.started)]
            if running:
                await asyncio.wait(running)  # never leave a job running on the call's state
            for future in (*tasks, *signals):
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: raised (once) here, not logged as lost
            raise


async def _chain(
    links: tuple[Link, ...], jobs: Sequence[Job[S]], state: S, signals: list[asyncio.Future[None]]
) -> None:
    try:
        for link in links:
            for wait in link.waits:
                await signals[wait]
            await jobs[link.job](state)
            if link.signal >= 0:
                signals[link.signal].set_result(None)
    except BaseException as exc:
        for link in links:  # whoever waits on this chain stops too
            if link.signal >= 0 and not signals[link.signal].done():
                if isinstance(exc, Exception):
                    signals[link.signal].set_exception(exc)
                else:
                    signals[link.signal].cancel()
        raise
