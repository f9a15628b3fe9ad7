"""Emulators run as detached services: started in their own session so they outlive
``bfctl apply`` (like the PostgreSQL servers), found again from a pid file, stopped by
``destroy``.

Layout of one service's directory::

    <name>.json    pid, process start time and port of the running service
    <name>.log     its output
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bfctl.providers.local.errors import LocalTargetError
from bfctl.providers.local.net import free_port, port_is_free

if TYPE_CHECKING:
    import psutil


def call(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> int:
    """The status of one JSON request to an emulator of the stack (``url`` is always an http://
    address on the loopback that the stack's record gives, never one from outside)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - see the docstring
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def answers(url: str) -> bool:
    """Whether the emulator at ``url`` is up and answering."""
    try:
        return call("GET", url, timeout=1.0) == 200
    except OSError:
        return False


class DetachedService:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.pid_file = directory / f"{name}.json"
        self.log = directory / f"{name}.log"

    def _process(self) -> tuple[psutil.Process, int] | None:
        """The running service and its port, if it is the one the pid file names."""
        import psutil  # when a service of the stack is looked at, never by a flow without one

        try:
            info = json.loads(self.pid_file.read_text())
            process = psutil.Process(info["pid"])
            if abs(process.create_time() - info["started"]) > 1.0 or not process.is_running():
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process, int(info["port"])
        except (OSError, ValueError, KeyError, psutil.Error):
            return None

    def running_port(self) -> int | None:
        found = self._process()
        return found[1] if found else None

    def start(
        self,
        command: Callable[[int], list[str]],
        ready: Callable[[int], bool],
        port: int | None = None,
        timeout: float = 60.0,
    ) -> int:
        """Start the service (on ``port`` if it is free) unless it runs; returns its port.

        ``command(port)`` is the argv; ``ready(port)`` says when it answers.
        """
        running = self.running_port()
        if running is not None:
            return running
        self.directory.mkdir(parents=True, exist_ok=True)
        chosen = port if port is not None and port_is_free(port) else free_port()
        with open(self.log, "ab") as log:
            process = subprocess.Popen(
                command(chosen),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,  # its own process group: stop() ends the whole tree
            )
        deadline = time.monotonic() + timeout
        while not ready(chosen):
            if process.poll() is not None or time.monotonic() > deadline:
                self._kill_group(process.pid)
                raise LocalTargetError(
                    f"the {self.name} did not start; its log {self.log} ends with:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        import psutil

        info = {"pid": process.pid, "started": psutil.Process(process.pid).create_time(), "port": chosen}
        self.pid_file.write_text(json.dumps(info))
        return chosen

    def stop(self, timeout: float = 10.0) -> None:
        found = self._process()
        if found is not None:
            self._kill_group(found[0].pid, timeout)
        self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _kill_group(pid: int, timeout: float = 10.0) -> None:
        import psutil

        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return
        members = [p for p in psutil.process_iter() if _group_of(p) == group]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            _, alive = psutil.wait_procs(members, timeout=timeout)
            if not alive:
                return

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
