"""The bench's sections, each in a child process of its own, so that one failing or hanging
loses no other's figures: each is printed and written to results.json as soon as it completes,
and one that outlives its time limit is stopped (with the servers it started) and reported.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: Seconds a section may run before it is stopped and reported as hung.
SECTION_LIMIT = float(os.environ.get("BENCH_SECTION_LIMIT", "900"))
#: Seconds a stopped section gets to clean up (destroy what it applied) before it is killed.
_CLEANUP_SECONDS = 60.0


@dataclass(frozen=True)
class Section:
    """``run`` makes the figures in a working directory of its own, ``show`` prints them, and
    results.json holds them under ``key``."""

    key: str
    run: Callable[[Path], Any]
    show: Callable[[Any], None]


class _Stopped(BaseException):
    """Raised in a section at SIGTERM, so its ``finally`` blocks stop what it started."""


def _stop(_signum: int, _frame: Any) -> None:
    raise _Stopped


def _child(section: Section, workdir: Path, sender: Connection) -> None:
    os.setpgid(0, 0)  # its servers join its process group: a hung section is killed with them
    signal.signal(signal.SIGTERM, _stop)
    try:
        outcome: tuple[str, Any] = ("figures", section.run(workdir))
    except BaseException as e:  # SystemExit and the rest: all are the section's failure
        traceback.print_exc()
        outcome = ("error", f"{type(e).__name__}: {e}")
    sender.send(outcome)


def run_section(section: Section, workdir: Path, limit: float) -> tuple[str, Any]:
    """("figures", what ``run`` returned), or ("error", why there are none)."""
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(target=_child, args=(section, workdir, sender))
    process.start()
    sender.close()
    try:
        if receiver.poll(limit):
            with contextlib.suppress(EOFError):
                return receiver.recv()  # type: ignore[no-any-return]
            process.join()
            return "error", f"the section's process ended (exit code {process.exitcode}) without figures"
        return "error", f"hung: stopped after {limit:g} s"
    finally:  # also on Ctrl-C, which reaches only the bench's own process group
        if process.is_alive():
            process.terminate()
            process.join(_CLEANUP_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.join()
        receiver.close()


def run_sections(sections: Sequence[Section], workdir: Path, report: dict[str, Any], out: Path, limit: float) -> None:
    """Each section in turn; ``report`` is written to ``out`` after each, a failed one holding
    ``{"error": ...}`` under its key."""
    for section in sections:
        place = workdir / section.key
        place.mkdir()
        kind, value = run_section(section, place, limit)
        if kind == "figures":
            report[section.key] = value
            section.show(value)
        else:
            report[section.key] = {"error": value}
            print(f"{section.key}: no figures ({value})\n")
        out.write_text(json.dumps(report, indent=2))
