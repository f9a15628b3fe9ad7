"""Load generation: wrk when installed, else a closed-loop Python client (flagged as such)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CONNECTIONS = 64


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    tool: str


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]  # wrk's latency format
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, seconds: float, body: bytes | None = None, connections: int = CONNECTIONS) -> LoadResult:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    with tempfile.TemporaryDirectory() as tmp:
        if body is not None:
            script = Path(tmp) / "post.lua"
            script.write_text(
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = [==[{body.decode()}]==]\n"
            )
            args += ["-s", str(script)]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]  # wrk prints it
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?timeout)\s*:?\s*(\d+)", out))
    return LoadResult(rps, _ms(p50.group(1)) if p50 else None, _ms(p99.group(1)) if p99 else None, errors, "wrk")


async def _closed_loop(url: str, seconds: float, body: bytes | None, connections: int) -> LoadResult:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            start = time.monotonic()
            method = "POST" if body is not None else "GET"
            async with session.request(method, url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                if r.status >= 300:
                    errors += 1
            latencies.append(time.monotonic() - start)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(connections)))
        took = time.monotonic() - began
    latencies.sort()
    pick = lambda q: latencies[int(q * (len(latencies) - 1))] * 1000 if latencies else None  # noqa: E731
    return LoadResult(len(latencies) / took, pick(0.5), pick(0.99), errors, "python closed loop (install wrk)")


def run_load(url: str, seconds: float, body: bytes | None = None, connections: int = CONNECTIONS) -> LoadResult:
    """``connections`` clients, each sending its next request once the last was answered."""
    if have_wrk():
        return run_wrk(url, seconds, body, connections)
    return asyncio.run(_closed_loop(url, seconds, body, connections))


def in_turn(
    bases: dict[str, str], scenarios: list[tuple[str, str, bytes | None]], seconds: float
) -> dict[str, dict[str, LoadResult]]:
    """Each scenario (name, path, body) on each server in turn, twice, each server's better run
    kept: a drift of the machine's speed hits all of them alike."""
    results: dict[str, dict[str, LoadResult]] = {name: {} for name, _path, _body in scenarios}
    for name, path, body in scenarios:
        for _round in range(2):
            for kind, base in bases.items():
                run_load(base + path, 1, body)  # warm-up
                result = run_load(base + path, seconds, body)
                best = results[name].get(kind)
                if best is None or result.requests_per_s > best.requests_per_s:
                    results[name][kind] = result
    return results
