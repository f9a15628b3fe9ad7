"""Runs a service's program until the service's folder is gone:
``python <this file> <folder> <program> [arguments...]``.

A project deleted without ``bfctl destroy`` takes its services' folders with it, but not their
processes. Our own storage emulator notices and stops; a program we do not write (Google's
Pub/Sub emulator: gcloud, and the JVM it runs) would serve on, holding its port and memory,
until a reboot. The guard runs it in a process group of its own (gcloud makes one anyway) and
ends that group, the JVM in it, once the folder is gone or once the guard itself is sent
SIGTERM, as ``DetachedService.stop`` does; it exits with the program's exit code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

#: Seconds between checks that the folder still exists, and that the program has to stop.
CHECK_SECONDS = 5.0


class _Stopped(Exception):
    """The guard was sent SIGTERM."""


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    raise _Stopped


def guarded(folder: Path, command: list[str]) -> list[str]:
    """``command`` run under a guard of ``folder``."""
    return [sys.executable, __file__, str(folder), *command]  # a script: no package of bfctl imported


def main(argv: list[str]) -> int:
    folder, command = Path(argv[0]), argv[1:]
    signal.signal(signal.SIGTERM, _stopped)
    program = subprocess.Popen(command, process_group=0)
    try:
        while folder.is_dir():
            with contextlib.suppress(subprocess.TimeoutExpired):
                return program.wait(timeout=CHECK_SECONDS)
    except _Stopped:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ending it already
    return _end(program)


def _end(program: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the program's group, SIGKILL to what is left of it after a few seconds; returns
    once none of it runs (the JVM holds the port until then)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(program.pid, sig)
        deadline = time.monotonic() + CHECK_SECONDS
        while _runs(program) and time.monotonic() < deadline:
            time.sleep(0.05)
    return program.wait()


def _runs(program: subprocess.Popen[bytes]) -> bool:
    """Whether any process of the program's group is left (the program itself reaped first)."""
    program.poll()
    try:
        os.killpg(program.pid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
