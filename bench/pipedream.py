"""``make bench``'s Pipedream section: what the dispatcher costs over calling the functions by hand.

``diamond()`` and ``flow_diamond()`` time a diamond with uneven durations (``a`` 10 ms, ``c(a)`` 10 ms,
``b`` 30 ms; the result needs ``c`` and ``b``) against its critical path (30 ms) and against running it
stage by stage (40 ms), through ``acall`` and through a flow endpoint.

``overhead()`` times a diamond of four trivial functions (``a``; ``b(a)`` and ``c(a)``; ``d(b, c)``)
run through the dispatcher against the same calls written out, timeit-style: ``RUNS`` calls per
timing, the best of ``REPEATS`` timings kept. Three cases: async functions under ``acall``, sync
functions under ``call``, and sync functions under ``acall`` (one trip to the thread pool).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from buildflow.pipedream import Dispatcher

RUNS = int(os.environ.get("BENCH_PIPEDREAM_RUNS", "20000"))
REPEATS = 5


def _sync_graph() -> tuple[Dispatcher, Callable[[], int]]:
    dispatcher = Dispatcher()

    @dispatcher.add
    def a() -> int:
        return 1

    @dispatcher.add
    def b(a: int) -> int:
        return a + 1

    @dispatcher.add
    def c(a: int) -> int:
        return a + 2

    @dispatcher.add
    def d(b: int, c: int) -> int:
        return b + c

    def by_hand() -> int:
        x = a()
        return d(b(x), c(x))

    return dispatcher, by_hand


def _async_graph() -> tuple[Dispatcher, Callable[[], Awaitable[int]]]:
    dispatcher = Dispatcher()

    @dispatcher.add
    async def a() -> int:
        return 1

    @dispatcher.add
    async def b(a: int) -> int:
        return a + 1

    @dispatcher.add
    async def c(a: int) -> int:
        return a + 2

    @dispatcher.add
    async def d(b: int, c: int) -> int:
        return b + c

    async def by_hand() -> int:
        x = await a()
        return await d(await b(x), await c(x))

    return dispatcher, by_hand


def _best(run: Callable[[int], float], runs: int) -> float:
    """Seconds per call, the best of REPEATS timings of ``runs`` calls."""
    return min(run(runs) for _ in range(REPEATS)) / runs


def _time_sync(fn: Callable[[], Any]) -> Callable[[int], float]:
    def run(runs: int) -> float:
        start = time.perf_counter()
        for _ in range(runs):
            fn()
        return time.perf_counter() - start

    return run


def _time_async(fn: Callable[[], Awaitable[Any]]) -> Callable[[int], float]:
    async def loop(runs: int) -> float:
        start = time.perf_counter()
        for _ in range(runs):
            await fn()
        return time.perf_counter() - start

    return lambda runs: asyncio.run(loop(runs))


def _case(by_hand: Callable[[int], float], dispatched: Callable[[int], float], runs: int) -> dict[str, Any]:
    hand, through = _best(by_hand, runs), _best(dispatched, runs)
    return {
        "runs": runs,
        "repeats": REPEATS,
        "by_hand_us": round(hand * 1e6, 3),
        "dispatcher_us": round(through * 1e6, 3),
        "ratio": round(through / hand, 1),
    }


def overhead() -> dict[str, Any]:
    """Per-call time of the diamond by hand and through the dispatcher, and their ratio, per case."""
    sync_dispatcher, sync_by_hand = _sync_graph()
    async_dispatcher, async_by_hand = _async_graph()
    assert sync_dispatcher.call("d") == sync_by_hand() == 5
    return {
        "graph": "a; b(a), c(a); d(b, c): four trivial functions",
        "acall, async functions": _case(
            _time_async(async_by_hand), _time_async(lambda: async_dispatcher.acall("d")), RUNS
        ),
        "call, sync functions": _case(_time_sync(sync_by_hand), _time_sync(lambda: sync_dispatcher.call("d")), RUNS),
        "acall, sync functions (one thread trip)": _case(
            _time_sync(sync_by_hand), _time_async(lambda: sync_dispatcher.acall("d")), max(RUNS // 10, 1)
        ),
    }


#: The diamond's durations (seconds) and what it should take: its critical path, and stage by stage.
A, B, C = 0.01, 0.03, 0.01
CRITICAL_PATH_MS = max(A + C, B) * 1e3
STAGES_MS = (max(A, B) + C) * 1e3
#: At most this share of the critical path (the issue's goal).
DIAMOND_GOAL = 1.1
DIAMOND_CALLS = int(os.environ.get("BENCH_DIAMOND_CALLS", "100"))


def _diamond_graph() -> tuple[Dispatcher, Callable[[], Awaitable[int]]]:
    dispatcher = Dispatcher()

    @dispatcher.add
    async def a() -> int:
        await asyncio.sleep(A)
        return 1

    @dispatcher.add
    async def b() -> int:
        await asyncio.sleep(B)
        return 2

    @dispatcher.add
    async def c(a: int) -> int:
        await asyncio.sleep(C)
        return a + 2

    @dispatcher.add
    async def result(c: int, b: int) -> int:
        return c + b

    async def in_stages() -> int:
        x, y = await asyncio.gather(a(), b())
        return await result(await c(x), y)

    return dispatcher, in_stages


def _p50_ms(fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    async def loop() -> list[float]:
        took = []
        for _ in range(calls):
            start = time.perf_counter()
            await fn()
            took.append(time.perf_counter() - start)
        return took

    return statistics.median(asyncio.run(loop())) * 1e3


def _diamond_figures(p50: dict[str, float]) -> dict[str, Any]:
    through = next(iter(p50.values()))
    ratio = through / CRITICAL_PATH_MS
    return {
        "p50_ms": {name: round(ms, 2) for name, ms in p50.items()},
        "critical_path_ms": CRITICAL_PATH_MS,
        "stage_by_stage_ms": STAGES_MS,
        "over_critical_path": round(ratio, 3),
        "over_stage_by_stage": round(through / STAGES_MS, 3),
        "goal": DIAMOND_GOAL,
        "met": ratio <= DIAMOND_GOAL,
    }


def diamond() -> dict[str, Any]:
    """p50 of ``acall`` on the diamond, one call at a time, beside the same run stage by stage by hand."""
    dispatcher, in_stages = _diamond_graph()
    p50 = {
        "acall": _p50_ms(lambda: dispatcher.acall("result"), DIAMOND_CALLS),
        "stage by stage, by hand": _p50_ms(in_stages, DIAMOND_CALLS),
    }
    return {"calls": DIAMOND_CALLS, **_diamond_figures(p50)}


#: Clients at once for the latency figures: few enough that requests do not queue for the CPU
#: (64, the other sections' load, keeps one worker busy and measures its throughput instead).
LATENCY_CONNECTIONS = 4
#: At most this share of the one-after-another latency (the issue's goal).
LATENCY_GOAL = 0.4


def flow_latency(seconds: float) -> dict[str, Any]:
    """p50 latency of an endpoint needing three independent 10 ms async results built by a dispatcher
    in its per-request plan, against a handler awaiting the same three one after another.

    Both served by one ``bfctl serve`` (bench/apps/dispatch.py), loaded in turn, twice, each one's
    better run kept, as the other sections do.
    """
    scenarios = {"dispatcher results (one plan)": "/together", "awaited one after another": "/in-turn"}
    best = _best_loads(scenarios, seconds)
    together, in_turn = (best[name].p50_ms for name in scenarios)
    ratio = together / in_turn
    return {
        "connections": LATENCY_CONNECTIONS,
        "p50_ms": {name: r.p50_ms for name, r in best.items()},
        "p99_ms": {name: r.p99_ms for name, r in best.items()},
        "errors": {name: r.errors for name, r in best.items() if r.errors},
        "ratio": round(ratio, 3),
        "goal": LATENCY_GOAL,
        "met": ratio <= LATENCY_GOAL,
    }


def flow_diamond(seconds: float) -> dict[str, Any]:
    """p50 of an endpoint taking the diamond as dispatcher results (bench/apps/dispatch.py), beside
    one running it stage by stage by hand; loaded as ``flow_latency`` does."""
    scenarios = {"dispatcher results (one plan)": "/diamond", "stage by stage, by hand": "/diamond-stages"}
    best = _best_loads(scenarios, seconds)
    figures = _diamond_figures({name: best[name].p50_ms for name in scenarios})
    return {"connections": LATENCY_CONNECTIONS, **figures, "errors": {n: r.errors for n, r in best.items() if r.errors}}


def _best_loads(scenarios: dict[str, str], seconds: float) -> dict[str, Any]:
    """Each path of one ``bfctl serve`` of bench/apps/dispatch.py loaded in turn, twice; each one's
    better run (by p50) kept, as the other sections do."""
    from bench.load import run_load
    from bench.servers import APPS, bfctl_serve, serving

    best: dict[str, Any] = {}
    first = next(iter(scenarios.values()))
    with serving(bfctl_serve(f"{APPS / 'dispatch.py'}:app"), probe=first) as (base, _process, _startup):
        for _round in range(2):
            for name, path in scenarios.items():
                run_load(base + path, 1, connections=LATENCY_CONNECTIONS)  # warm-up
                result = run_load(base + path, seconds, connections=LATENCY_CONNECTIONS)
                if result.p50_ms is not None and (name not in best or result.p50_ms < best[name].p50_ms):
                    best[name] = result
    return best


def diamonds(seconds: float) -> dict[str, Any]:
    """The diamond through ``acall`` and through a flow endpoint."""
    return {"acall": diamond(), "flow endpoint": flow_diamond(seconds)}


def print_diamonds(figures: dict[str, Any]) -> None:
    print(
        f"   the diamond (a {A * 1e3:g} ms, c(a) {C * 1e3:g} ms, b {B * 1e3:g} ms; result(c, b)): "
        f"critical path {CRITICAL_PATH_MS:g} ms, stage by stage {STAGES_MS:g} ms"
    )
    for case, row in figures.items():
        shown = ", ".join(f"{name} {ms:.2f} ms" for name, ms in row["p50_ms"].items())
        verdict = "met" if row["met"] else "MISSED"
        print(
            f"      {case:<14} p50 {shown}: {row['over_critical_path']:.2f}x the critical path "
            f"(goal ≤ {row['goal']}: {verdict}), {row['over_stage_by_stage']:.2f}x stage by stage"
        )
