"""SIGTERM and Ctrl+C in a serving process: handlers that cannot miss a signal, and a last resort.

A stop signal that arrives while a handler is being replaced must wait rather than be lost or
meet the default action: the supervisor blocks the stop signals across ``fork``, and a worker
unblocks them only once its own handler is installed, so a signal sent meanwhile is delivered
to that handler then. Handlers are Python-level (``signal.signal``): they run between two
bytecodes of the main thread, even while the event loop is blocked by a handler's sync code,
and hand the loop its work with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

log = logging.getLogger("buildflow.runtime")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds a worker that was told to stop gets beyond its grace period (the sinks' last writes,
#: teardowns) before it ends itself: within the 10 s Cloud Run leaves with the default 8 s grace.
MARGIN = 1.5

Handler = Callable[[int, FrameType | None], Any]


#: The handlers ``install`` replaced, for ``restore``.
Previous = dict[signal.Signals, Any]


def install(handler: Handler) -> Previous | None:
    """``handler`` for every stop signal, then those signals unblocked (one that came while they
    were blocked reaches it now); the handlers replaced, or None off the main thread, where
    Python cannot take signals (the caller stops the server some other way)."""
    try:
        previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    except ValueError:
        return None
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return previous


def restore(previous: Previous | None) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Stop signals held back while the block runs (a fork: the child starts with them blocked
    and the parent's handler cannot run in it); the parent's pending ones are handled after."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def child_defaults() -> None:
    """In a forked worker, signals still blocked: the supervisor's handler is not the worker's
    (a pending signal is kept: the default action of these signals is not to ignore them)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def stop_with(supervisor: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """In a process ``supervisor`` started (a forked worker, ``bfctl dev``'s child): ``sig``
    when its supervisor dies without telling it to stop (SIGKILL, the OOM killer, a closed
    terminal), as the supervisor would send it; orphaned, it would serve and consume on, unseen,
    for good. Linux only (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, sig, 0, 0, 0)
    if os.getppid() != supervisor:  # it died before the request was made
        os.kill(os.getpid(), sig)


class LastResort:
    """Ends the process ``seconds`` after ``arm()`` unless ``disarm()`` came first: a worker told
    to stop exits in bounded time even when a handler ignores cancellation, blocks the event
    loop or a teardown never returns (what it had in flight is delivered again).

    Its thread waits on a pipe: ``arm`` is one ``os.write``, safe in a signal handler that may
    have interrupted any code, even itself. The pipe stays open as long as the process (one per
    server): a signal handler may still write to it after the thread has gone.
    """

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self._read, self._write = os.pipe()
        threading.Thread(target=self._watch, name="bf-last-resort", daemon=True).start()

    def arm(self) -> None:
        os.write(self._write, b"a")

    def disarm(self) -> None:
        os.write(self._write, b"d")

    def _watch(self) -> None:
        if os.read(self._read, 1) != b"a":
            return
        deadline = time.monotonic() + self.seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._read], [], [], left)
            if ready and os.read(self._read, 1) == b"d":  # another signal is another b"a"
                return
        log.error(
            "%s: still stopping %.1f s after it was told to; exiting now (its unfinished messages are delivered again)",
            self.what,
            self.seconds,
        )
        os._exit(1)
