"""Terminal output for the CLI.

Everything goes through these helpers so that output behaves the same way
everywhere: styled with Rich on a terminal, plain and immediately flushed
lines otherwise.  Plain output matters because scripts and tests read the
"Serving ... on ..." line from a pipe to know the server is up; Rich would
wrap long lines at 80 columns and could buffer them.
"""

from __future__ import annotations

import os
import sys
import traceback
from functools import cache
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

DEBUG_ENV = "BFCTL_DEBUG"


def debug_enabled() -> bool:
    """Whether the user asked for full tracebacks (``BFCTL_DEBUG=1``)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@cache
def _rich(stream_name: str) -> Console:
    # Bound by name, not by object, so a replaced sys.stdout (pytest capture)
    # is looked up at print time instead of being frozen here. Rich is imported
    # here, not at module level: plain output and `--help` never need it.
    from rich.console import Console

    return Console(stderr=stream_name == "stderr", highlight=False, soft_wrap=True)


def _emit(stream_name: str, text: str, style: str | None) -> None:
    stream: TextIO = getattr(sys, stream_name)
    if stream.isatty():
        from rich.text import Text

        _rich(stream_name).print(Text(text, style=style or ""))
    else:
        print(text, file=stream, flush=True)


def info(text: str, style: str | None = None) -> None:
    """Print one line of regular output to stdout."""
    _emit("stdout", text, style)


def progress(text: str) -> None:
    """Print a line about long work (building an image) on stderr: stdout stays the command's result."""
    _emit("stderr", text, "dim")


def warning(message: str) -> None:
    """Print ``Warning: <message>`` in yellow on stderr (stdout may be a JSON plan)."""
    _emit("stderr", f"Warning: {message}", "yellow")


def error(message: str, detail: str | None = None) -> None:
    """Print ``Error: <message>`` in red on stderr, then ``detail`` (e.g. a
    user traceback) as-is, never a traceback of bfctl itself."""
    _emit("stderr", f"Error: {message}", "bold red")
    if detail:
        _emit("stderr", detail.rstrip("\n"), None)


def unexpected(exc: BaseException) -> None:
    """Report an exception nobody anticipated: the message only, unless
    ``BFCTL_DEBUG`` is set, in which case the full traceback follows."""
    summary = "".join(traceback.format_exception_only(exc)).strip()
    if debug_enabled():
        error(summary, "".join(traceback.format_exception(exc)))
    else:
        error(summary, f"(run with {DEBUG_ENV}=1 for the traceback)")
