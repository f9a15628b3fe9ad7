"""Processes a test module leaves running when it ends.

Emulators and PostgreSQL servers are detached on purpose (they outlive ``bfctl apply`` and
``serve``), so once the command that started them is gone nothing ties them to the test run:
reparented to init, they would keep their ports and memory across runs. Each one inherits its
environment from whatever started it (pytest, a ``bfctl`` subprocess, ``pg_ctl``), so every
process a module starts carries :data:`OWNER`, naming the run, the module and the test; that
finds them among everyone else's processes on the machine, whatever their command line names.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid

import psutil

#: The variable each process started by the run inherits: ``<run> <module> <test>``.
OWNER = "BFCTL_TEST_OWNER"
RUN = uuid.uuid4().hex
#: How long processes that are stopping (a postmaster just after ``pg_ctl stop``) may take to go
#: (``BFCTL_TEST_SETTLE`` shortens it for the check's own tests, whose leftover never goes).
SETTLE_SECONDS = float(os.environ.get("BFCTL_TEST_SETTLE", "10"))


def owner(module: str, test: str = "") -> str:
    return f"{RUN} {module} {test}"


def _owner_of(process: psutil.Process) -> str | None:
    try:
        return process.environ().get(OWNER)
    except (psutil.Error, OSError):  # gone, a kernel thread, or another user's
        return None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def started_by(module: str) -> dict[psutil.Process, str]:
    """The running processes ``module`` started, with the test that started each ("" for a fixture
    of the module). A postmaster's children rewrite their environment: they are its, not listed."""
    prefix = owner(module)
    found: dict[psutil.Process, str] = {}
    for process in psutil.process_iter():
        mark = _owner_of(process)
        if process.pid != os.getpid() and mark is not None and mark.startswith(prefix) and _alive(process):
            found[process] = mark[len(prefix) :]
    return found


def still_running(module: str) -> dict[psutil.Process, str]:
    """What ``module`` started that is still running once whatever was stopping has had
    :data:`SETTLE_SECONDS` to go (a bound on failure only: an empty answer comes at once)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while (found := started_by(module)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def describe(process: psutil.Process, test: str) -> str:
    try:
        command = " ".join(process.cmdline())[:200]
    except psutil.Error:
        command = "?"
    return f"  pid {process.pid}, started by {test or 'a fixture of the module'}: {command}"


def _signal(processes: list[psutil.Process], sig: signal.Signals) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


def end(processes: list[psutil.Process]) -> None:
    """SIGTERM to them and their children, then SIGKILL to what is left after a few seconds."""
    family = list(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            family += process.children(recursive=True)
    _signal(family, signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=5)
    _signal(alive, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
