"""What every ``bfctl`` command does around its own work: load the flow from the working
directory, and report an error users can act on as its message alone, with exit code 1.

Only the console is imported here: the loader, the providers and the runtime come with the
first flow loaded or the first error reported, and Typer (for the exit it raises) with the first
error, so the image's entrypoint, which serves without the CLI, never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bfctl import console

if TYPE_CHECKING:
    from bfctl.loader import LoadedFlow

#: Reports an error users can act on: its message, then optional detail.
ErrorReport = Callable[[str, str | None], None]


def load(target: str | None, command: str) -> LoadedFlow:
    """The flow ``target`` names (or the project's configuration does), from the working directory.
    ``command`` is how the running command is given a flow (``bfctl plan``, ``bfctl db upgrade
    --flow``): a message asking for one shows it, ready to copy."""
    from bfctl.loader import load_flow

    return load_flow(target, Path.cwd(), full_traceback=console.debug_enabled(), command=command)


@contextmanager
def reported_errors(report: ErrorReport = console.error) -> Iterator[None]:
    """Errors users can act on: the message alone, exit 1 (never a traceback). Their classes
    are imported when one is raised: a command that succeeds needs none of their modules (the
    providers' among them)."""
    try:
        yield
    except Exception as exc:
        if not _report(exc, report):
            raise
    else:
        return
    import typer

    raise typer.Exit(1) from None


def _report(error: Exception, report: ErrorReport) -> bool:
    """Report ``error`` if users can act on it; False for any other."""
    from bfctl.infra import Refused
    from bfctl.loader import FlowLoadError
    from bfctl.providers.errors import ProviderError
    from bfctl.runtime.errors import StartupError
    from buildflow.exceptions import FlowDeclarationError, PrimitiveValidationError

    if isinstance(error, FlowLoadError):
        report(error.message, error.user_traceback)
    elif isinstance(error, StartupError):
        report_startup_error(error, report)
    elif isinstance(error, Refused | PrimitiveValidationError | FlowDeclarationError | ProviderError):
        report(str(error), None)
    else:
        return False
    return True


@contextmanager
def exit_codes() -> Iterator[None]:
    """Outside a Typer command (a script's ``app.run()``, the image's entrypoint): the exit a
    reported error raises ends the process with its code."""
    try:
        yield
    except Exception as exc:
        import typer

        if isinstance(exc, typer.Exit):
            raise SystemExit(exc.exit_code) from None
        raise


def report_startup_error(error: Exception, report: ErrorReport = console.error) -> None:
    """The one-line message, then the user's frames of what caused it (a dependency that
    raised), never a library's; every frame under BFCTL_DEBUG=1. Forked workers call this too."""
    from bfctl.tracebacks import startup_detail

    report(str(error), startup_detail(error, console.debug_enabled()))
