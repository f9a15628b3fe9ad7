"""The ``bfctl`` command (and ``python -m bfctl``): ``bfctl serve`` with a command line that
``bfctl.flags`` reads plainly serves without importing Typer, the rest of the CLI and
pydantic, which a new instance would otherwise spend a quarter of its start-up on; any other
command line goes to the Typer CLI (``bfctl.cli``), which also parses, documents and refuses
what the quick reading leaves to it.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    if args[:1] == ["serve"]:
        from bfctl.flags import serve_arguments

        given = serve_arguments(args[1:], os.environ)
        if given is not None:
            from bfctl.serving import serve_and_exit

            serve_and_exit(**given)
    from bfctl import cli

    cli.main()
