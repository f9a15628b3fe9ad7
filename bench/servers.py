"""Starting and stopping the servers under test, one process each."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "bench" / "apps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(kind: str, port: int, workers: int = 1) -> list[str]:
    py = sys.executable
    if kind == "bfctl":
        return [py, "-m", "bfctl", "serve", f"{APPS / 'ours.py'}:app", "--port", str(port), "--no-access-log",
                "--workers", str(workers)]
    if kind == "aiohttp":
        return [py, str(APPS / "raw.py"), str(port)]
    if kind == "fastapi":
        return [py, "-m", "uvicorn", "fast:app", "--app-dir", str(APPS), "--port", str(port),
                "--log-level", "warning", "--no-access-log", "--workers", str(workers)]
    raise ValueError(kind)


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Seconds until ``url`` first answered 200 (the process is polled, not slept on blindly)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - began
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@contextmanager
def running(kind: str, probe: str = "/abob", env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    port = free_port()
    process = subprocess.Popen(command(kind, port), cwd=ROOT, env={**os.environ, **(env or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        startup = wait_until_up(base + probe, process)
        yield base, process, startup
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
