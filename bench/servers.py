"""Starting and stopping the servers under test, one process each."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "bench" / "apps"
Served = tuple[str, "subprocess.Popen[bytes]", float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bfctl_serve(target: str) -> list[str]:
    """``bfctl serve`` of ``target``, one worker, no access log, no dashboard (it traces every
    request); the port comes last."""
    command = [sys.executable, "-m", "bfctl", "serve", target, "--no-access-log", "--no-dashboard"]
    return [*command, "--workers", "1", "--port"]


def uvicorn_serve(target: str) -> list[str]:
    """uvicorn serving ``target`` from bench/apps: one worker, warnings only, no access log, its
    default loop and HTTP parser (uvloop and httptools, which uvicorn[standard] installs); the
    port comes last.  FastAPI and Litestar both run on exactly this."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--app-dir",
        str(APPS),
        "--log-level",
        "warning",
        "--no-access-log",
        "--workers",
        "1",
        "--port",
    ]


def command(kind: str) -> list[str]:
    """How each peer is started; the port is appended."""
    if kind == "bfctl":
        return bfctl_serve(f"{APPS / 'ours.py'}:app")
    if kind == "aiohttp":
        return [sys.executable, str(APPS / "raw.py")]
    if kind == "fastapi":
        return uvicorn_serve("fast:app")
    if kind == "litestar":
        return uvicorn_serve("lite:app")
    raise ValueError(kind)


def wait_until_up(
    url: str,
    process: subprocess.Popen[bytes],
    timeout: float = 60.0,
    poll: float = 0.01,
    began: float | None = None,
) -> float:
    """Seconds since ``began`` (by default: now) until ``url`` first answered 200, polled every
    ``poll`` seconds while the process lives."""
    began = time.monotonic() if began is None else began
    while time.monotonic() - began < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - began
        except OSError:
            time.sleep(poll)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@contextmanager
def serving(cmd: list[str], cwd: Path = ROOT, probe: str = "/_bf/health") -> Iterator[Served]:
    """Run ``cmd`` plus a free port until the block ends; yields (base URL, process, start-up s)."""
    port = free_port()
    process = subprocess.Popen([*cmd, str(port)], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        startup = wait_until_up(base + probe, process)
        yield base, process, startup
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as Cloud Run stops an instance; SIGKILL if it has not ended within 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def running(kind: str, probe: str = "/abob") -> AbstractContextManager[Served]:
    return serving(command(kind), ROOT, probe)
