"""``bfctl serve``'s options as data, each declared once: Typer's declarations are made from them
(``bfctl.options.option``), and ``serve_arguments`` reads a command line by them without Typer.

``bfctl serve`` is what a new instance runs before it answers anything, and Typer, which checks
each option's value with a pydantic adapter, took a quarter of the time to the first answer.
So a command line whose every value is plainly one of these (a known option once, a whole
number in range, ...) is read here and served at once; anything else (``--help``, a value out
of range, an option given twice) is left to Typer, which parses it and says what is wrong.
Nothing here imports Typer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True)
class Flag(Generic[T]):
    """One option: its names (``--on/--off`` for a switch), the type of its value, its default,
    and what ``--help`` says of it."""

    decls: tuple[str, ...]
    kind: type[str | int | float | bool]
    default: T
    help: str
    minimum: float | None = None
    maximum: float | None = None
    envvar: str | None = None
    metavar: str | None = None
    show_default: bool | str = True

    def names(self) -> dict[str, bool | None]:
        """Each name on a command line: the value a switch's name gives, None for a name that
        takes the next argument as its value."""
        if self.kind is not bool:
            return dict.fromkeys(self.decls)
        on, _, off = self.decls[0].partition("/")
        return {on: True, **({off: False} if off else {})}

    def read(self, text: str) -> Any:
        """``text`` as this option's value, or None unless it plainly is one (Typer says why)."""
        if self.kind is str:
            return text
        if self.kind is int and _WHOLE.fullmatch(text):
            value: float = int(text)
        elif self.kind is float and _DECIMAL.fullmatch(text):
            value = float(text)
        else:
            return None
        too_small = self.minimum is not None and value < self.minimum
        return None if too_small or (self.maximum is not None and value > self.maximum) else value


STACK: Flag[str] = Flag(("--stack",), str, "dev", "Stack name: one set of resources and state per stack.")
INFRA_TARGET: Flag[str] = Flag(
    ("--target",), str, "local", "Where resources live: `local` (embedded, the default) or `gcp`."
)
ACCESS_LOG: Flag[bool] = Flag(("--access-log/--no-access-log",), bool, True, "Log one line per request.")
DASHBOARD: Flag[bool | None] = Flag(
    ("--dashboard/--no-dashboard",),
    bool,
    None,
    "Serve the dashboard on the flow's port under /_bf/ (it answers this machine only).",
    show_default="$BFCTL_DASHBOARD, else on for the local target bound to loopback",
)
GCP_PROJECT: Flag[str | None] = Flag(
    ("--gcp-project",),
    str,
    None,
    "gcp target: the default Google Cloud project (else `[tool.buildflow.gcp]` or the primitives').",
    show_default=False,
)
GCP_REGION: Flag[str | None] = Flag(
    ("--gcp-region",),
    str,
    None,
    "gcp target: the default region, e.g. us-central1 (else `[tool.buildflow.gcp]` or the primitives').",
    show_default=False,
)

# `bfctl serve`'s own.
HOST: Flag[str | None] = Flag(
    ("--host",),
    str,
    None,
    "Interface to bind; 0.0.0.0 listens on all of them.",
    show_default="0.0.0.0 when K_SERVICE is set (Cloud Run), else 127.0.0.1",
)
PORT: Flag[int | None] = Flag(
    ("--port",),
    int,
    None,
    "TCP port to bind; 0 picks a free port and prints it.",
    minimum=0,
    maximum=65535,
    show_default="$PORT when set, else 8000",
)
WORKERS: Flag[int | None] = Flag(
    ("--workers",),
    int,
    None,
    "Number of worker processes (on Cloud Run the gcp target sets it from the service's CPUs).",
    minimum=1,
    envvar="BFCTL_WORKERS",
    show_default="decided from the flow",
)
GRACE: Flag[float] = Flag(
    ("--grace",),
    float,
    8.0,
    "Seconds in-flight requests and consumers' messages get to finish after SIGTERM/Ctrl+C"
    " (consumers stop pulling at once); then the queued rows are written. A worker still"
    " stopping 1.5 s later ends itself (exit 1). The default fits Cloud Run's 10 s between"
    " SIGTERM and SIGKILL.",
    minimum=0.0,
)
IDLE_TIMEOUT: Flag[float] = Flag(
    ("--idle-timeout",),
    float,
    30.0,
    "Seconds a connection may go without sending a whole request head (idle between requests,"
    " or sending its headers slowly); then it is closed.",
    minimum=0.01,
)
LOG_FORMAT: Flag[str | None] = Flag(
    ("--log-format",),
    str,
    None,
    "json: one JSON object per line as Cloud Logging reads it, each line written while"
    " handling a request tied to its X-Cloud-Trace-Context trace and request id.",
    metavar="text|json",
    show_default="json when K_SERVICE is set (Cloud Run), else text",
)
APPLY_FIRST: Flag[bool] = Flag(("--apply",), bool, False, "Apply the flow's infrastructure first (without asking).")
LOOP: Flag[str] = Flag(("--loop",), str, "auto", "Event loop: auto (uvloop when installed), asyncio or uvloop.")
THREADS: Flag[int | None] = Flag(
    ("--threads",),
    int,
    None,
    "Threads per worker for sync handlers and dependencies; more when they wait on I/O.",
    minimum=1,
    show_default="CPUs + 4, at most 32",
)

#: ``bfctl serve``'s options by the name of the parameter each gives a value (with TARGET, the
#: flow, its only argument).
SERVE: dict[str, Flag[Any]] = {
    "host": HOST,
    "port": PORT,
    "workers": WORKERS,
    "grace": GRACE,
    "idle_timeout": IDLE_TIMEOUT,
    "access_log": ACCESS_LOG,
    "log_format": LOG_FORMAT,
    "stack": STACK,
    "infra_target": INFRA_TARGET,
    "apply_first": APPLY_FIRST,
    "gcp_project": GCP_PROJECT,
    "gcp_region": GCP_REGION,
    "loop": LOOP,
    "threads": THREADS,
    "dashboard": DASHBOARD,
}


def serve_arguments(args: list[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """``bfctl serve``'s parameters (``target`` and one per option) from the arguments after
    ``serve``, or None when Typer is to read them: an unknown or repeated option, a value that
    is not plainly one, a second argument, an environment variable set but empty."""
    names = {name: (param, value) for param, flag in SERVE.items() for name, value in flag.names().items()}
    given: dict[str, Any] = {}
    target = None
    rest = iter(args)
    for arg in rest:
        if not arg.startswith("-"):
            if target is not None:
                return None
            target = arg
            continue
        name, has_value, inline = arg.partition("=")
        if name not in names or names[name][0] in given:
            return None
        param, switched = names[name]
        if switched is not None:
            if has_value:
                return None
            given[param] = switched
            continue
        text = inline if has_value else next(rest, None)
        if text is None or text.startswith("-") or (value := SERVE[param].read(text)) is None:
            return None
        given[param] = value
    for param, flag in SERVE.items():
        if param in given:
            continue
        if flag.envvar is None or flag.envvar not in environ:
            given[param] = flag.default
        elif (value := flag.read(environ[flag.envvar]) if environ[flag.envvar] else None) is None:
            return None
        else:
            given[param] = value
    return {"target": target, **given}
