"""A child of ``bfctl dev``: started ahead of its need, it imports what serving needs while the
current child serves, then runs the ``bfctl serve`` command line ``bfctl dev`` sends it.

A module of its own, apart from ``bfctl.dev``: the supervisor never imports the command line
it runs here (``bfctl.cli`` imports the supervisor for ``bfctl dev``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys

from bfctl.runtime import stopping

#: What a ``serve`` imports before it reaches the flow, and the libraries bfctl's database
#: dependencies and migrations import once it does: most of a restart's time when imported
#: then, so a spare child imports them while the current one serves.
PRELOADED = (
    "bfctl.cli",
    "bfctl.infra",
    "bfctl.loader",
    "bfctl.runtime.server",
    "bfctl.runtime.app",
    "bfctl.providers.local.provider",
    "buildflow.dependencies.sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.dialects.postgresql",
    "alembic.command",
    "alembic.runtime.migration",
)


def main(supervisor: int) -> None:
    """A child's life: import :data:`PRELOADED`, then run the bfctl command line read from stdin
    (one JSON list) once the supervisor sends it; at end of input without one, exit quietly.

    The flow itself is imported only then, afresh, as it is on disk at that moment.
    """
    # Stopped before it serves, it has nothing to tear down: SIGINT just ends it, no traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # it has a session of its own, so nothing else would stop it: it would go on serving on the port
    stopping.stop_with(supervisor, signal.SIGINT)
    for name in PRELOADED:
        with contextlib.suppress(Exception):  # the serve itself reports what fails to import
            importlib.import_module(name)
    line = sys.stdin.readline()
    if not line:
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(os.devnull, "rb") as nothing:
        os.dup2(nothing.fileno(), sys.stdin.fileno())
    sys.argv = ["bfctl", *json.loads(line)]
    from bfctl import cli

    cli.main()
