"""The image's entrypoint, as the generated Dockerfile runs it: ``python -P -m bfctl.container
TARGET`` serves the flow as ``bfctl serve TARGET --host 0.0.0.0`` does, with every other setting
from the environment Cloud Run and the gcp target give the container (``$PORT``, ``$K_SERVICE``,
``$BFCTL_WORKERS``, ``$BUILDFLOW_OUTPUTS``) or at its default.

A new Cloud Run instance answers nothing until this process does, and the CLI's parsing
(Typer, which validates each option with pydantic) was a quarter of that time: here no option
is parsed (the settings are ``bfctl.flags``'), so neither is imported. ``-P`` keeps the
project's folder off the front of ``sys.path`` while bfctl imports its own modules, as the
``bfctl`` script does.
"""

from __future__ import annotations

import os
import sys

from bfctl import console
from bfctl.flags import WORKERS, serve_arguments

USAGE = "usage: python -P -m bfctl.container TARGET (the image's entrypoint; bfctl serve takes options)"


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM; exit with the server's code, never with a raw traceback."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        console.error(USAGE)
        sys.exit(2)
    given = serve_arguments([args[0], "--host", "0.0.0.0"], os.environ)  # noqa: S104 - reached from outside
    if given is None:  # what the environment says is all that can be wrong
        workers = os.environ.get(WORKERS.envvar or "")
        console.error(f"{WORKERS.envvar}={workers!r} is not a number of worker processes (1 or more)")
        sys.exit(2)
    from bfctl.serving import serve_and_exit

    serve_and_exit(**given)


if __name__ == "__main__":
    main()
