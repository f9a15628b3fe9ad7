"""``make bench``: our runtime against raw aiohttp, FastAPI and Litestar, side by side in one run.

Prints a table of requests/s, p50/p99 latency and ratios, and writes bench/results.json.
BENCH_SECONDS sets the length of each load run (default 4).  BENCH_ONLY, a comma-separated
list of sections (endpoints, memory, collectors, consumers, pipedream, tools,
coldstart, tracing), runs only those; e.g.
``BENCH_ONLY=endpoints`` runs the four endpoint scenarios alone. Each section runs in a process of
its own and is printed and written as it completes; one that fails, or runs longer than
BENCH_SECTION_LIMIT seconds (default 900), is reported as such and the others go on.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench import tracing
from bench.load import CONNECTIONS, LoadResult, have_wrk, in_turn, run_load
from bench.sections import SECTION_LIMIT, Section, run_sections
from bench.servers import ROOT, running

SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
ORDER = json.dumps(
    {
        "order_id": 1,
        "customer": "ann",
        "email": "a@example.com",
        "amount": 9.5,
        "currency": "EUR",
        "paid": True,
        "items": ["a", "b", "c"],
        "note": "rush",
    }
).encode()

# name, path, body, baseline kind, targets: {other kind: minimum ours/other}
ENDPOINTS = [
    ("1. GET /bob: sync handler, REPLICA dependency", "/bob", None, {"aiohttp": 0.9, "fastapi": 2.5}),
    ("2. GET /abob: async handler", "/abob", None, {"aiohttp": 0.9}),
    ("3. GET /deps: REPLICA + 2 PROCESS (1 async)", "/deps", None, {"aiohttp": 0.9}),
    ("4. POST /orders: JSON body, 8 fields", "/orders", ORDER, {}),
]
KINDS = ("bfctl", "aiohttp", "fastapi", "litestar")


def selected_sections() -> list[str]:
    """The sections BENCH_ONLY names (all of them when it is unset)."""
    only = [s.strip() for s in os.environ.get("BENCH_ONLY", ",".join(RUNS)).split(",") if s.strip()]
    unknown = [s for s in only if s not in RUNS]
    if unknown or not only:
        raise SystemExit(
            f"BENCH_ONLY: unknown section(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(RUNS)}"
        )
    return only


def answer(url: str, body: bytes | None) -> tuple[int, str, Any]:
    """(status, media type, decoded JSON body) of one request as the load generator sends it."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            status, media_type, raw = r.status, r.headers.get_content_type(), r.read()
    except urllib.error.HTTPError as e:
        status, media_type, raw = e.code, e.headers.get_content_type(), e.read()
    try:
        return status, media_type, json.loads(raw)
    except ValueError:
        return status, media_type, raw


def check_answers(bases: dict[str, str]) -> None:
    """Before anything is measured: every peer answers every scenario's request as bfctl does
    (status, media type and JSON body), and bfctl answers 200, so all of them do the same work."""
    wrong = []
    for name, path, body, _targets in ENDPOINTS:
        want = answer(bases["bfctl"] + path, body)
        if want[0] != 200:
            wrong.append(f"{name}: bfctl answered {want}")
        for kind in KINDS:
            got = answer(bases[kind] + path, body)
            if got != want:
                wrong.append(f"{name}: {kind} answered {got}, bfctl {want}")
    if wrong:
        raise SystemExit("the peers do not answer alike; nothing measured:\n  " + "\n  ".join(wrong))


def endpoints() -> list[dict[str, Any]]:
    """The servers run side by side, measured in turn (``in_turn``)."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        bases = {kind: stack.enter_context(running(kind))[0] for kind in KINDS}
        check_answers(bases)
        results = in_turn(bases, [(name, path, body) for name, path, body, _targets in ENDPOINTS], SECONDS)
    rows = []
    for name, _path, _body, targets in ENDPOINTS:
        ours = results[name]["bfctl"]
        row: dict[str, Any] = {"scenario": name, "results": {k: vars(v) for k, v in results[name].items()}}
        row["ratios"] = {k: ours.requests_per_s / results[name][k].requests_per_s for k in KINDS if k != "bfctl"}
        row["targets"] = {k: {"min": t, "met": row["ratios"][k] >= t} for k, t in targets.items()}
        rows.append(row)
    return rows


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"user": f"user-{i}", "kind": "click", "n": i} for i in range(n)]


def _copy_ceiling(project: Path, rows: int = 200_000, batch: int = 1000) -> float:
    """Rows/s of COPY straight into the applied table, in batches, on one connection."""
    import psycopg

    from bfctl.providers.state import StateStore

    state = StateStore(project, "local", "dev").load()
    out = state.resources["bench-project:bench-db.bench"].outputs
    password = next((project / ".buildflow").rglob("admin-password")).read_text().strip()
    data = [(r["user"], r["kind"], r["n"]) for r in _rows(batch)]
    with psycopg.connect(
        host=out["host"], port=out["port"], dbname="bench", user="buildflow_admin", password=password
    ) as conn:
        began = time.perf_counter()
        for _ in range(rows // batch):
            with conn.cursor() as cur, cur.copy('COPY many_events ("user", kind, n) FROM STDIN') as copy:
                for row in data:
                    copy.write_row(row)
            conn.commit()
        return rows / (time.perf_counter() - began)


def collectors(workdir: Path) -> dict[str, Any]:
    """Collector throughput into the embedded PostgreSQL and DuckDB, 64 concurrent clients.

    Like the endpoint scenarios: every scenario in turn, twice, each one's better run kept, and
    the COPY ceiling measured twice, so a drift of the machine's speed hits all of them alike."""
    import shutil

    from bench.cpu_use import postmaster, tree_cpu
    from bench.servers import bfctl_serve, serving

    project = workdir / "collect"
    project.mkdir()
    shutil.copy(ROOT / "bench" / "apps" / "collect.py", project / "collect.py")
    bfctl = [sys.executable, "-m", "bfctl"]
    subprocess.run([*bfctl, "apply", "collect.py:app", "--yes"], cwd=project, stdout=subprocess.DEVNULL, check=True)
    one = json.dumps(_rows(1)[0]).encode()
    hundred = json.dumps(_rows(100)).encode()
    try:
        with serving(bfctl_serve("collect.py:app"), project) as (base, process, _startup):
            runs: dict[str, LoadResult] = {}
            # CPU µs per request of the server and of PostgreSQL in each kept run.
            cpu: dict[str, dict[str, float]] = {}
            database = postmaster(project)
            for _round in range(2):
                for name, path, body in [
                    ("plain endpoint (req/s)", "/plain", one),
                    ("collector → PostgreSQL, 1 row/request", "/pg/one", one),
                    ("one INSERT per request", "/insert", one),
                    ("collector → DuckDB, 1 row/request", "/duck/one", one),
                    ("collector → PostgreSQL, 100 rows/request", "/pg/hundred", hundred),
                ]:
                    run_load(base + path, 1, body)
                    before = tree_cpu(process.pid), tree_cpu(database)
                    result = run_load(base + path, SECONDS, body)
                    used = tree_cpu(process.pid) - before[0], tree_cpu(database) - before[1]
                    if name not in runs or result.requests_per_s > runs[name].requests_per_s:
                        runs[name] = result
                        requests = max(result.requests_per_s * SECONDS, 1)
                        cpu[name] = {"server": used[0] / requests * 1e6, "postgres": used[1] / requests * 1e6}
        ceiling = max(_copy_ceiling(project) for _round in range(2))
    finally:
        subprocess.run([*bfctl, "destroy", "--yes"], cwd=project, stdout=subprocess.DEVNULL, check=True)
    rows_per_s = {name: r.requests_per_s * (100 if "100 rows" in name else 1) for name, r in runs.items()}
    rows_per_s["COPY ceiling, batches of 1000"] = ceiling
    pg_one = rows_per_s["collector → PostgreSQL, 1 row/request"]
    ratios = {
        "1 row/request vs plain endpoint (target ≥ 0.8)": pg_one / rows_per_s["plain endpoint (req/s)"],
        "1 row/request vs one INSERT per request (target ≥ 3)": pg_one / rows_per_s["one INSERT per request"],
        "100 rows/request vs COPY ceiling (target ≥ 0.5)": rows_per_s["collector → PostgreSQL, 100 rows/request"]
        / ceiling,
    }
    errors = {name: r.errors for name, r in runs.items() if r.errors}
    return {
        "rows_per_s": rows_per_s,
        "ratios": ratios,
        "errors": errors,
        "p99_ms": {name: r.p99_ms for name, r in runs.items()},
        "cpu_us_per_request": cpu,
    }


def _time(cmd: list[str], cwd: Path, runs: int = 5) -> float:
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        took.append(time.perf_counter() - began)
    return statistics.median(took)


def tools(workdir: Path) -> dict[str, float]:
    """Wall seconds (median of 5) of CLI commands on a copy of examples/notes."""
    import shutil

    bfctl = [sys.executable, "-m", "bfctl"]
    project = workdir / "notes"
    shutil.copytree(ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow"))
    out = {"bfctl --help": _time([*bfctl, "--help"], project)}
    applies = []
    for _ in range(3):
        applies.append(_time([*bfctl, "apply", "--yes"], project, runs=1))
        subprocess.run([*bfctl, "destroy", "--yes"], cwd=project, stdout=subprocess.DEVNULL, check=True)
    out["bfctl apply (fresh Cloud SQL instance)"] = statistics.median(applies)
    subprocess.run([*bfctl, "apply", "--yes"], cwd=project, stdout=subprocess.DEVNULL, check=True)
    out["bfctl plan (no changes)"] = _time([*bfctl, "plan"], project)
    with running("bfctl", probe="/bob") as (_base, _process, startup):
        out["bfctl serve until first 200"] = startup
    subprocess.run([*bfctl, "destroy", "--yes"], cwd=project, stdout=subprocess.DEVNULL, check=True)
    return out


def memory() -> dict[str, float]:
    """RSS of one idle worker, and after 100k requests (MiB)."""
    import urllib.request

    with running("bfctl", probe="/bob") as (base, process, _startup):
        proc = psutil.Process(process.pid)
        idle = proc.memory_info().rss / 2**20
        sent = 0
        while sent < 100_000:
            result = run_load(base + "/bob", 2)
            sent += int(result.requests_per_s * 2)
        with urllib.request.urlopen(base + "/bob") as r:
            r.read()
        after = proc.memory_info().rss / 2**20
    return {"idle worker RSS MiB": idle, "RSS after 100k requests MiB": after, "requests sent": sent}


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\nLoad: {'wrk' if have_wrk() else 'python closed loop (install wrk for real figures)'}, "
        f"{CONNECTIONS} connections, {SECONDS:g}s per run, 1 server process each\n"
    )
    for row in rows:
        print(row["scenario"])
        for kind, r in row["results"].items():
            p50 = f"{r['p50_ms']:.2f}" if r["p50_ms"] is not None else "-"
            p99 = f"{r['p99_ms']:.2f}" if r["p99_ms"] is not None else "-"
            print(f"   {kind:<8} {r['requests_per_s']:>10,.0f} req/s   p50 {p50:>6} ms   p99 {p99:>6} ms")
        for kind, ratio in row["ratios"].items():
            target = row["targets"].get(kind)
            mark = "" if target is None else f"   (target ≥ {target['min']}: {'met' if target['met'] else 'MISSED'})"
            print(f"   bfctl / {kind:<8} {ratio:.2f}x{mark}")
        print()


def print_pipedream(figures: dict[str, Any]) -> None:
    latency = figures["latency"]
    clients = latency["connections"]
    print(f"Pipedream: an endpoint needing three independent 10 ms async results ({clients} connections):")
    for name, p50 in latency["p50_ms"].items():
        print(f"   {name:<35} p50 {p50:>6.2f} ms")
    verdict = "met" if latency["met"] else "MISSED"
    print(f"   ratio {latency['ratio']:.2f}x (goal ≤ {latency['goal']}: {verdict})")
    from bench.pipedream import print_diamonds

    print_diamonds(figures["diamond"])
    overhead = figures["overhead"]
    print(f"   dispatcher over calls by hand, {overhead['graph']}:")
    for name, case in overhead.items():
        if isinstance(case, dict):
            print(f"      {name:<42} {case['dispatcher_us']:>8.2f} µs vs {case['by_hand_us']:.2f} µs: {case['ratio']}x")
    print()


def print_collectors(figures: dict[str, Any]) -> None:
    print("Collectors (rows/s):")
    for name, value in figures["rows_per_s"].items():
        print(f"   {name:<45} {value:>12,.0f}")
    for name, value in figures["ratios"].items():
        print(f"   {name:<55} {value:.2f}x")
    print("   CPU per request (µs): server, PostgreSQL")
    for name, used in figures.get("cpu_us_per_request", {}).items():
        print(f"   {name:<45} {used['server']:>8.1f} {used['postgres']:>8.1f}")


def print_consumers(figures: dict[str, Any]) -> None:
    print(f"Consumers (messages/s, a backlog of {figures['messages']:,} drained):")
    for name, value in figures["messages_per_s"].items():
        print(f"   {name:<45} {value:>12,.0f}")
    for name, value in figures["ratios"].items():
        print(f"   {name:<55} {value:.2f}x")


def print_figures(title: str) -> Callable[[dict[str, Any]], None]:
    def printer(figures: dict[str, Any]) -> None:
        print(title + ":")
        for name, value in figures.items():
            print(f"   {name:<40} {value:,.3f}" if isinstance(value, float) else f"   {name:<40} {value:,}")

    return printer


def _pipedream() -> dict[str, Any]:
    from bench.pipedream import diamonds, flow_latency, overhead

    return {"latency": flow_latency(SECONDS), "diamond": diamonds(SECONDS), "overhead": overhead()}


def _coldstart(workdir: Path) -> dict[str, Any]:
    from bench.coldstart import coldstart

    return coldstart(workdir)


def _print_coldstart(figures: dict[str, Any]) -> None:
    from bench.coldstart import print_coldstart

    print_coldstart(figures)


def _consumers(workdir: Path) -> dict[str, Any]:
    from bench.consumers import consumers

    return consumers(workdir)


#: The sections by the name BENCH_ONLY gives them, in the order a full run takes them.
RUNS: dict[str, Section] = {
    "endpoints": Section("endpoints", lambda _dir: endpoints(), print_table),
    "memory": Section("memory", lambda _dir: memory(), print_figures("Memory")),
    "collectors": Section("collectors", collectors, print_collectors),
    "consumers": Section("consumers", _consumers, print_consumers),
    "pipedream": Section("pipedream", lambda _dir: _pipedream(), print_pipedream),
    "tools": Section("tools_seconds", tools, print_figures("Tools seconds")),
    "coldstart": Section("coldstart", _coldstart, _print_coldstart),
    "tracing": Section("tracing", tracing.run, tracing.show),
}


def main() -> None:
    import tempfile

    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "load_tool": "wrk" if have_wrk() else "python-closed-loop",
        "seconds_per_run": SECONDS,
    }
    out = ROOT / "bench" / "results.json"
    with tempfile.TemporaryDirectory() as tmp:
        run_sections([RUNS[name] for name in selected_sections()], Path(tmp), report, out, SECTION_LIMIT)
    print(f"\nwritten: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
