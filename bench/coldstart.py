"""Cold start: seconds from process start to the first 200 of tests/flows/hello.py's ``GET /hello``.

Cloud Run scales from zero, so a new instance serves nothing until this much time has passed.
``bfctl serve`` and the same app on uvicorn with FastAPI and with Litestar (bench/apps) are
started in turn, five times each, and each one's median kept, so a drift of the machine's
speed hits all of them alike. Beside them: the generated Dockerfile's entrypoint run as Cloud
Run runs it (``PORT`` and ``K_SERVICE`` set; it serves without the CLI's parsing), and what
``bfctl serve`` spends importing, by package, from ``python -X importtime``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from bench.servers import APPS, ROOT, bfctl_serve, free_port, stop, uvicorn_serve, wait_until_up

RUNS = 5
HELLO = ROOT / "tests" / "flows" / "hello.py"
PATH = "/hello"
#: The row of the generated Dockerfile's entrypoint (``python -P -m bfctl.container TARGET``).
IMAGE = "image entrypoint (bfctl.container)"
#: How many of the packages ``bfctl serve`` imports are listed, costliest first.
OFFENDERS = 12


@contextmanager
def _started(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, stderr: IO[str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``cmd`` running until the block ends, then stopped with SIGTERM as Cloud Run stops it."""
    process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr or subprocess.DEVNULL)
    try:
        yield process
    finally:
        stop(process)


def _until_200(port: int, process: subprocess.Popen[bytes], began: float) -> float:
    """Seconds since ``began`` when ``process`` first answered ``GET /hello`` with 200 (polled
    every 2 ms: a start-up is a few hundred of them)."""
    return wait_until_up(f"http://127.0.0.1:{port}{PATH}", process, poll=0.002, began=began)


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process ``pid`` has used so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _first_200(cmd: list[str], cwd: Path, port: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds from starting ``cmd`` until it answers ``GET /hello`` with 200, and the CPU
    seconds it used until then: the CPU time hardly moves with the machine's other load, so it
    still compares the servers when the wall time, shared with others, does not."""
    began = time.monotonic()
    with _started(cmd, cwd, env) as process:
        wall = _until_200(port, process, began)
        return wall, _cpu_seconds(process.pid)


def entrypoint() -> list[str]:
    """The ENTRYPOINT of the Dockerfile ``bfctl build`` writes for hello.py."""
    from bfctl.providers.gcp.image import dockerfile

    line = next(x for x in dockerfile("hello.py:app").splitlines() if x.startswith("ENTRYPOINT "))
    return list(json.loads(line.removeprefix("ENTRYPOINT ")))


def _container_env(port: int) -> dict[str, str]:
    """What Cloud Run and the gcp target set in the service's environment (the project, the
    applied outputs, one worker per CPU), and PYTHONDONTWRITEBYTECODE as the image does; the
    image's ``python`` is found on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {
        **os.environ,
        "PATH": path,
        "PORT": str(port),
        "K_SERVICE": "hello",
        "GOOGLE_CLOUD_PROJECT": "bench",
        "BUILDFLOW_OUTPUTS": json.dumps({"target": "gcp", "outputs": {}}),
        "BFCTL_WORKERS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def import_offenders(project: Path) -> dict[str, float]:
    """Milliseconds ``bfctl serve`` spends importing each top-level package (``bfctl.runtime``
    and ``bfctl.providers`` apart), costliest first, until it answers."""
    port = free_port()
    cmd = [sys.executable, "-X", "importtime", *bfctl_serve("hello.py:app")[1:], str(port)]
    with open(project / "importtime.txt", "w") as err, _started(cmd, project, stderr=err) as process:
        _until_200(port, process, time.monotonic())
    spent: dict[str, float] = {}
    for line in (project / "importtime.txt").read_text().splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            parts = m.group(2).split(".")
            package = ".".join(parts[:2]) if parts[0] == "bfctl" and len(parts) > 1 else parts[0]
            spent[package] = spent.get(package, 0.0) + int(m.group(1)) / 1000
    costliest = sorted(spent.items(), key=lambda item: -item[1])[:OFFENDERS]
    return {"(all)": sum(spent.values()), **dict(costliest)}


def coldstart(workdir: Path) -> dict[str, Any]:
    # Byte-compiled as pip compiles an installed wheel (and the peers' packages are): a source
    # tree edited since its last run would else be compiled again at each start.
    sources = [str(ROOT / name) for name in ("bfctl", "runtime", "providers", "buildflow")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *sources], stdout=subprocess.DEVNULL, check=True)
    project = workdir / "hello"
    project.mkdir()
    shutil.copy(HELLO, project / "hello.py")
    starts: dict[str, list[str]] = {
        "bfctl serve": bfctl_serve("hello.py:app"),
        "uvicorn + FastAPI": uvicorn_serve("hello_fast:app"),
        "uvicorn + Litestar": uvicorn_serve("hello_lite:app"),
    }
    took: dict[str, list[tuple[float, float]]] = {name: [] for name in [*starts, IMAGE]}
    load_before = os.getloadavg()
    for _round in range(RUNS):
        for name, cmd in starts.items():
            port = free_port()
            took[name].append(_first_200([*cmd, str(port)], project, port))
        port = free_port()
        took[IMAGE].append(_first_200(entrypoint(), project, port, _container_env(port)))
    medians = {name: statistics.median(wall for wall, _cpu in runs) for name, runs in took.items()}
    cpu = {name: statistics.median(cpu for _wall, cpu in runs) for name, runs in took.items()}
    return {
        "runs": RUNS,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "median_s": medians,
        "median_cpu_s": cpu,
        "all_wall_cpu_s": took,
        "ratios": {
            "bfctl serve / uvicorn + FastAPI (goal ≤ 1)": medians["bfctl serve"] / medians["uvicorn + FastAPI"],
            "bfctl serve / uvicorn + Litestar": medians["bfctl serve"] / medians["uvicorn + Litestar"],
            "image entrypoint / uvicorn + FastAPI": medians[IMAGE] / medians["uvicorn + FastAPI"],
            "CPU: bfctl serve / uvicorn + FastAPI": cpu["bfctl serve"] / cpu["uvicorn + FastAPI"],
            "CPU: image entrypoint / uvicorn + FastAPI": cpu[IMAGE] / cpu["uvicorn + FastAPI"],
        },
        "import_ms": import_offenders(project),
        "peers": str(APPS.relative_to(ROOT)),
    }


def print_coldstart(figures: dict[str, Any]) -> None:
    load = " / ".join(", ".join(f"{x:.2f}" for x in figures["load_average"][at]) for at in ("before", "after"))
    print(f"Cold start: process start to the first 200 of GET /hello (median of {figures['runs']}; load {load}):")
    for name, value in figures["median_s"].items():
        print(f"   {name:<35} {value * 1000:>8.0f} ms   CPU {figures['median_cpu_s'][name] * 1000:>5.0f} ms")
    for name, value in figures["ratios"].items():
        print(f"   {name:<45} {value:.2f}x")
    print("   bfctl serve imports (python -X importtime, ms by package):")
    for name, value in figures["import_ms"].items():
        print(f"      {name:<30} {value:>8.1f}")
    print()
