"""The ``bfctl`` command line.

Only Typer, Rich and the standard library are imported at module level: the
SDK, the runtime and their dependencies (aiohttp and friends) are imported by
the command that needs them, so ``bfctl --help`` stays fast and works even
when an optional dependency is broken.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from bfctl import __version__, console

app = typer.Typer(
    name="bfctl",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        console.info(f"bfctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the bfctl version and exit.",
        ),
    ] = False,
) -> None:
    """Serve a backend declared in one Python file with the BuildFlow-compatible SDK."""


TARGET_HELP = (
    "The flow to serve: `module:attr`, `module` (attr defaults to `app`), "
    "`path/to/file.py:attr` or `path/to/file.py`. When omitted, read "
    '`\\[tool.buildflow] app = "module:attr"` from ./pyproject.toml, '
    "else `entry_point:` from ./buildflow.yaml."
)


@app.command()
def serve(
    target: Annotated[
        str | None, typer.Argument(metavar="TARGET", help=TARGET_HELP, show_default=False)
    ] = None,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 listens on all of them.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="TCP port to bind; 0 picks a free port and prints it."),
    ] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default="decided from the flow",
            help="Number of worker processes.",
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds in-flight requests get to finish after SIGTERM/Ctrl+C before shutdown.",
        ),
    ] = 10.0,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.")
    ] = True,
) -> None:
    """Serve a flow's endpoints over HTTP until SIGTERM or Ctrl+C."""
    from bfctl.loader import FlowLoadError, load_flow

    try:
        loaded = load_flow(target, Path.cwd(), full_traceback=console.debug_enabled())
    except FlowLoadError as exc:
        console.error(exc.message, exc.user_traceback)
        raise typer.Exit(1) from None

    from runtime import server
    from runtime.errors import StartupError

    try:
        routes = server.describe_routes(loaded.flow)
        code = server.serve(
            loaded.flow,
            host=host,
            port=port,
            workers=workers,
            grace=grace,
            access_log=access_log,
            on_ready=partial(_announce, loaded.target, routes),
        )
    except StartupError as exc:
        console.error(str(exc))
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _announce(target: str, routes: list[tuple[str, str]], urls: list[str]) -> None:
    """Print where the flow is served, called once the sockets are bound.

    The first line is the contract for scripts and tests: they wait for
    "Serving <target> on <url>" and then know requests will be accepted.
    """
    console.info(f"Serving {target} on {urls[0]}", "bold green")
    for url in urls[1:]:
        console.info(f"  also on {url}", "green")
    base = urls[0].rstrip("/")
    width = max((len(method) for method, _ in routes), default=0)
    for method, path in routes:
        console.info(f"  {method:<{width}}  {base}{path}", "cyan")
    console.info("Press Ctrl+C to stop.", "dim")


def main() -> None:
    """Console-script entry point: run the app, never showing a raw traceback."""
    try:
        app(prog_name="bfctl")
    except Exception as exc:
        console.unexpected(exc)
        sys.exit(1)
