"""``bfctl dev``: serve a flow on the local target, and serve it again when its files change.

This process only supervises: each (re)start runs ``bfctl serve --apply`` as a child, so the
flow's modules are imported afresh, infrastructure a change adds is applied before serving, a
broken save costs only that child (it reports the error as ``serve`` does, and the next good
save serves again), and databases and emulators, detached services of the local target, keep
running with their data across restarts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bfctl import console

if TYPE_CHECKING:
    from watchfiles import Change

#: How often (ms) the watcher wakes without a change to notice a child that exited on its own.
TICK_MS = 200
#: Seconds a stopped child gets beyond its grace period before it is killed.
STOP_MARGIN = 10.0
#: Where ``serve`` listens unless told (or on Cloud Run, where nobody runs ``dev``).
DEFAULT_HOST = "127.0.0.1"
#: Besides ``*.py``, the files whose change restarts serving.
WATCHED_NAMES = frozenset({"pyproject.toml"})
#: Folders never watched: local state (databases' data), environments and caches.
IGNORED_DIRS = (".buildflow", "venv", ".ruff_cache", "build", "dist")


@dataclass(frozen=True)
class ServeSettings:
    """What every child ``bfctl serve`` gets; ``port`` is fixed once, so restarts keep it."""

    target: str | None
    host: str | None
    port: int | None
    stack: str
    workers: int | None
    grace: float
    access_log: bool
    dashboard: bool | None = None

    def arguments(self) -> list[str]:
        """The ``bfctl serve`` command line, after ``bfctl``."""
        command = ["serve", "--apply", "--target", "local", "--stack", self.stack]
        command += ["--grace", str(self.grace)]
        if self.host is not None:
            command += ["--host", self.host]
        if self.port is not None:
            command += ["--port", str(self.port)]
        command.append("--access-log" if self.access_log else "--no-access-log")
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        if self.dashboard is not None:
            command.append("--dashboard" if self.dashboard else "--no-dashboard")
        return [*command, "--", self.target] if self.target is not None else command


def flow_files_filter() -> Callable[[Change, str], bool]:
    """The watcher's filter: the project's Python files and pyproject.toml, outside ignored folders."""
    from watchfiles import DefaultFilter

    ignored = DefaultFilter(ignore_dirs=(*DefaultFilter.ignore_dirs, *IGNORED_DIRS))

    def wanted(change: Change, path: str) -> bool:
        return ignored(change, path) and (path.endswith(".py") or Path(path).name in WATCHED_NAMES)

    return wanted


def watched_roots(target: str | None, cwd: Path) -> list[Path]:
    """The project folder, plus the folder of a target file that lives outside it."""
    from bfctl.loader import split_target

    roots = [cwd.resolve()]
    location = split_target(target)[0] if target else None
    if location and location.endswith(".py"):
        folder = (cwd / location).resolve().parent
        if not folder.is_relative_to(roots[0]):
            roots.append(folder)
    return roots


def fixed_port(host: str | None, port: int | None) -> int | None:
    """The port every restart binds: as given, and for port 0 a free one picked once here (so
    restarts keep it); None lets ``serve`` resolve it the same way each time ($PORT, else 8000)."""
    if port != 0:
        return port
    address = host or DEFAULT_HOST
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.create_server((address, 0), family=family) as sock:
        return int(sock.getsockname()[1])


class _Child:
    """One ``bfctl serve`` run, started as a spare ahead of its need and told to serve later.

    It lives in its own session, so a terminal's Ctrl+C reaches only the supervisor, which
    stops it with SIGINT: serve drains on it, and an apply in progress unwinds (releasing the
    stack's lock) instead of dying mid-way.
    """

    def __init__(self) -> None:
        # Written bytecode is not read back: a save within the second of the last import, of
        # the same size, would otherwise serve the old code (pyc files are checked that coarsely).
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        command = [sys.executable, "-c", f"from bfctl.dev_child import main; main({os.getpid()})"]
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, text=True, start_new_session=True)
        self.grace: float | None = None
        self.exit_noticed = False

    def serve(self, settings: ServeSettings) -> None:
        assert self.process.stdin is not None
        self.grace = settings.grace
        with contextlib.suppress(BrokenPipeError):  # it failed to start: its exit code is reported
            self.process.stdin.write(json.dumps(settings.arguments()) + "\n")
            self.process.stdin.close()

    def exited_by_itself(self) -> int | None:
        """The exit code the first time the child is seen to have exited unasked, else None."""
        code = self.process.poll()
        if code is None or self.exit_noticed:
            return None
        self.exit_noticed = True
        return code

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        if self.grace is None:  # a spare that was never needed: it holds nothing
            self.process.kill()
            self.process.wait()
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=self.grace + STOP_MARGIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _names(changes: Iterable[tuple[Change, str]], roots: Sequence[Path]) -> str:
    shown = sorted({_relative(Path(path), roots) for _, path in changes})
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


def _relative(path: Path, roots: Sequence[Path]) -> str:
    for root in roots:
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return str(path)


def _port_taken(settings: ServeSettings) -> str | None:
    """Why no change can make a child that failed to start serve: another program holds the port
    every child binds (None when the port is free, and the failure was the flow's)."""
    from bfctl.runtime import ports, server

    host, port = server.listen_address(settings.host, settings.port, os.environ)
    if ports.bindable(host, port):
        return None
    return (
        f"another program holds {host}:{port}, and no change to the flow can free it, so `bfctl dev` stops: "
        f"run it again with {ports.instead(host, port)}"
    )


def run(settings: ServeSettings, roots: Sequence[Path]) -> int:
    """Serve, and serve again on every change under ``roots``, until SIGINT or SIGTERM (exit code
    0), or until another program holds the port (exit code 1)."""
    from watchfiles import watch

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda _signum, _frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    children = [_Child(), _Child()]  # the one to serve, then the spare: both import at once
    try:
        changes = watch(
            *roots,
            watch_filter=flow_files_filter(),
            rust_timeout=TICK_MS,
            yield_on_timeout=True,
            stop_event=stop,
            raise_interrupt=False,
        )
        # The first (empty) tick means the watcher is in place: no save from now on is missed.
        next(changes, None)
        console.progress(f"Watching {', '.join(map(str, roots))} for changes to *.py and pyproject.toml.")
        children[0].serve(settings)
        for changed in changes:
            if changed:
                console.progress(f"{_names(changed, roots)} changed: serving again.")
                children.pop(0).stop()
                if stop.is_set():
                    break
                children[0].serve(settings)
                children.append(_Child())
            elif (code := children[0].exited_by_itself()) is not None:
                if code != 0 and (taken := _port_taken(settings)) is not None:
                    console.error(taken)
                    return 1
                # not "Serving ...": scripts wait for that line to know the flow is served
                console.progress(f"Waiting for a change to serve again (the last start exited with code {code}).")
    finally:
        for child in children:
            child.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
