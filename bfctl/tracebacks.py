"""Tracebacks cut down to the frames a flow's author wrote.

A failing import or a failing dependency is usually one line of the user's code; the frames
of importlib, the standard library, this distribution's own packages and (for dependencies)
the libraries they call only bury it. ``BFCTL_DEBUG=1`` shows everything instead.
"""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

from bfctl.console import DEBUG_ENV

# Packages shipped in this distribution; their frames are never the user's.
_OWN_PACKAGES = ("bfctl", "buildflow", "runtime", "providers")  # the folders bfctl.runtime and bfctl.providers live in

FULL_TRACEBACK_HINT = f"(run with {DEBUG_ENV}=1 for the full traceback)"


def foreign_roots(*, installed: bool) -> tuple[str, ...]:
    """Directories whose frames are not the user's: the standard library and this
    distribution's packages, plus site-packages when ``installed`` (a flow module may be
    installed there, but a dependency's failure deep inside SQLAlchemy never is the user's)."""
    paths = sysconfig.get_paths()
    roots = {paths["stdlib"], paths["platstdlib"]}
    if installed:
        roots |= {paths["purelib"], paths["platlib"]}
    own_parent = Path(__file__).resolve().parent.parent
    roots.update(str(own_parent / package) for package in _OWN_PACKAGES)
    return tuple(str(Path(root).resolve()) + "/" for root in roots)


def is_foreign(filename: str, roots: tuple[str, ...]) -> bool:
    return filename.startswith("<frozen ") or str(Path(filename).resolve()).startswith(roots)


def drop_foreign_frames(tb: traceback.TracebackException, *, installed: bool) -> None:
    """Trim ``tb`` and its chained causes in place to user frames only."""
    roots = foreign_roots(installed=installed)
    seen: set[int] = set()
    pending: list[traceback.TracebackException | None] = [tb]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(
            frame for frame in current.stack if not is_foreign(frame.filename, roots)
        )
        pending += [current.__cause__, current.__context__]


def user_frames(exc: BaseException) -> str:
    """The frames of ``exc``'s own traceback that are the user's, formatted; "" when none.

    Only ``exc`` itself: the exceptions chained inside it (a driver's error under
    SQLAlchemy's) were raised in library code, and its one-line message already names them.
    """
    roots = foreign_roots(installed=True)
    stack = traceback.StackSummary.from_list(
        frame for frame in traceback.extract_tb(exc.__traceback__) if not is_foreign(frame.filename, roots)
    )
    return "".join(stack.format())


def startup_detail(error: BaseException, full: bool) -> str | None:
    """What follows a StartupError's one-line message: for one caused by the user's code (a
    dependency that raised), that code's frames and a hint; with ``full``, every frame."""
    cause = error.__cause__
    if cause is None:
        return None
    if full:
        return "".join(traceback.format_exception(error))
    frames = user_frames(cause)
    if not frames:
        return FULL_TRACEBACK_HINT
    return f"Traceback (most recent call last; your code only):\n{frames}{FULL_TRACEBACK_HINT}"
