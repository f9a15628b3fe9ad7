"""The image's entrypoint, as the generated Dockerfile runs it: ``python -P -m bfctl.container
TARGET`` serves the flow as ``bfctl serve TARGET --host 0.0.0.0`` does, with every other setting
from the environment Cloud Run and the gcp target give the container (``$PORT``, ``$K_SERVICE``,
``$BFCTL_WORKERS``, ``$BUILDFLOW_OUTPUTS``) or at its default.

A new Cloud Run instance answers nothing until this process does, and the CLI's parsing
(Typer, which validates each option with pydantic) was a quarter of that time: here no option
is parsed, so neither is imported. ``-P`` keeps the project's folder off the front of
``sys.path`` while bfctl imports its own modules, as the ``bfctl`` script does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from bfctl import console
from bfctl.app_run import STACK, TARGET

USAGE = "usage: python -P -m bfctl.container TARGET (the image's entrypoint; bfctl serve takes options)"
#: Worker processes; the gcp target sets it from the service's CPUs, as ``bfctl serve`` reads it.
WORKERS_VARIABLE = "BFCTL_WORKERS"


def workers_from(environ: Mapping[str, str]) -> int | None:
    """``$BFCTL_WORKERS`` as a count (None: decided from the flow); ValueError names a bad one."""
    value = environ.get(WORKERS_VARIABLE, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{WORKERS_VARIABLE}={value!r} is not a number of worker processes (1 or more)")
    return int(value)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM; exit with the server's code, never with a raw traceback."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        console.error(USAGE)
        sys.exit(2)
    try:
        workers = workers_from(os.environ)
    except ValueError as exc:
        console.error(str(exc))
        sys.exit(2)
    from bfctl.commands import exit_codes
    from bfctl.runtime.server import DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT
    from bfctl.serving import serve_flow

    try:
        with exit_codes():
            code = serve_flow(
                args[0],
                host="0.0.0.0",  # noqa: S104 - the container's port is reached from outside it
                port=None,
                workers=workers,
                grace=DEFAULT_GRACE,
                idle_timeout=DEFAULT_IDLE_TIMEOUT,
                access_log=True,
                log_format=None,
                stack=STACK,
                infra_target=TARGET,
                apply_first=False,
                gcp_project=None,
                gcp_region=None,
                loop="auto",
                threads=None,
                dashboard=None,
            )
    except Exception as exc:
        console.unexpected(exc)
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    main()
