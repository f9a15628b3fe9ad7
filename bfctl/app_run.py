"""``app.run()``: a flow run as a script (``python main.py``) is served as ``bfctl serve`` serves
it on the local target, with the default stack of the project in the working directory.

BuildFlow's ``app.run()`` served the flow against resources made earlier (``buildflow apply``)
or that existed already; here that is the stack's recorded outputs, its stopped servers started,
the primitives the local target makes on first use made, its Secrets read from the stack.
The script's module runs before ``app.run()`` is called: what it connects to at import
(``create_all`` on BuildFlow's ``engine``) finds the stack through :func:`local_stack_outputs`,
the ``buildflow.outputs`` entry point the SDK loads at that first connection.
Inside a deployed container the outputs come from ``$BUILDFLOW_OUTPUTS`` and no stack is read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Unpack

    from bfctl.providers.base import Outputs
    from bfctl.runtime.server import RunOptions
    from buildflow import Flow

TARGET = "local"
#: ``bfctl``'s default ``--stack``: where ``bfctl apply`` put what the script is served with.
STACK = "dev"


def run_flow(flow: Flow, **options: Unpack[RunOptions]) -> Any:
    """``Flow.run()`` (the ``buildflow.runtime`` entry point): the exit code once stopped, or with
    ``block=False`` a coroutine serving in the caller's loop until ``stop`` is set. An error
    bfctl would report ends the script with its message (exit 1), never a traceback."""
    from bfctl import announce, infra
    from bfctl.loader import LoadedFlow
    from bfctl.runtime import server
    from bfctl.runtime.dashboard import policy

    with _exit_on_reported_errors():
        loaded = LoadedFlow(flow, flow.flow_id, sys.modules["__main__"])
        outputs = infra.outputs_for_serving(loaded, TARGET, STACK, apply_first=False)
        as_json = server.log_format_of(None) == "json"
        # as ``bfctl serve`` decides it: on where only this machine reaches it, unless $BFCTL_DASHBOARD says
        host, _ = server.listen_address(options["host"], options["port"], os.environ)
        dashboard = policy.wanted(None, TARGET, host, os.environ)
        said = partial(announce.announce, loaded.target, announce.served_routes(flow), as_json, dashboard)
        served = server.run_flow(flow, outputs=outputs, announce=said, dashboard=dashboard, **options)
    return served if options["block"] else _reported(served)


def local_stack_outputs() -> Outputs:
    """The ``buildflow.outputs`` entry point of the local target: its default stack's outputs,
    found when the script's module first connects (before ``app.run()``). An error there (a
    database ``bfctl apply`` never made) ends the script with its message alone."""
    from bfctl import infra

    _report_uncaught_without_traceback()
    return infra.running_stack(TARGET, STACK)


@contextmanager
def _exit_on_reported_errors() -> Iterator[None]:
    """bfctl's reports of errors users can act on; their exit ends the script with its code."""
    from bfctl.commands import exit_codes, reported_errors

    with exit_codes(), reported_errors():
        yield


async def _reported(serving: Coroutine[Any, Any, int]) -> int:
    with _exit_on_reported_errors():
        return await serving


def _report_uncaught_without_traceback() -> None:
    """Make an error about the stack that the script's module leaves uncaught (raised by what it
    runs at import) print as bfctl prints it; others keep Python's report, as does every
    error under ``BFCTL_DEBUG=1``."""
    from bfctl import console
    from bfctl.infra import Refused
    from bfctl.providers.errors import ProviderError
    from buildflow.dependencies.flow_dependencies import NotApplied

    previous = sys.excepthook

    def report(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if isinstance(error, NotApplied | Refused | ProviderError) and not console.debug_enabled():
            console.error(str(error))
        else:
            previous(kind, error, tb)

    sys.excepthook = report
