"""The options and arguments more than one ``bfctl`` command takes, each declared once.

A command names them in its signature (``stack: StackOption = "dev"``), so they read, parse and
document alike everywhere; options of a single command stay beside it. Those ``bfctl serve``
takes are declared as data in ``bfctl.flags`` (which reads a command line without Typer) and
made Typer's by ``option``. Only Typer is imported here: ``bfctl --help`` builds every
command's signature.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bfctl import flags


def option(flag: flags.Flag[Any]) -> Any:
    """Typer's declaration of ``flag``."""
    return typer.Option(
        *flag.decls,
        help=flag.help,
        min=flag.minimum,
        max=flag.maximum,
        envvar=flag.envvar,
        metavar=flag.metavar,
        show_default=flag.show_default,
    )


TARGET_HELP = (
    "The flow module: `module:attr`, `module` (attr defaults to `app`), "
    "`path/to/file.py:attr` or `path/to/file.py`. When omitted, read "
    '`[tool.buildflow] app = "module:attr"` from ./pyproject.toml, '
    "else `entry_point:` from ./buildflow.yaml."
)

FlowArgument = Annotated[str | None, typer.Argument(metavar="TARGET", help=TARGET_HELP, show_default=False)]
StackOption = Annotated[str, option(flags.STACK)]
InfraTargetOption = Annotated[str, option(flags.INFRA_TARGET)]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
BreakLockOption = Annotated[
    bool, typer.Option("--break-lock", help="Break the stack's lock when its holder is dead or on another host.")
]
AccessLogOption = Annotated[bool, option(flags.ACCESS_LOG)]
DashboardOption = Annotated[bool | None, option(flags.DASHBOARD)]
SkipPreflightOption = Annotated[
    bool,
    typer.Option(
        "--skip-preflight",
        help="Do not run the checks of `bfctl doctor` first (also BFCTL_SKIP_PREFLIGHT=1).",
    ),
]

# The gcp target's settings.
GCPProjectOption = Annotated[str | None, option(flags.GCP_PROJECT)]
GCPRegionOption = Annotated[str | None, option(flags.GCP_REGION)]
ImageOption = Annotated[
    str | None,
    typer.Option(
        "--image",
        metavar="URI",
        help="gcp target: run this image on Cloud Run instead of building one from the project.",
        show_default=False,
    ),
]
DeployOption = Annotated[
    bool,
    typer.Option(
        "--deploy/--no-deploy",
        help="gcp target: deploy the flow's code to its Cloud Run service; --no-deploy keeps the image it runs.",
    ),
]
MemoryOption = Annotated[
    str | None,
    typer.Option(
        "--memory",
        help="gcp target: memory per Cloud Run instance, e.g. 512Mi or 2Gi.",
        show_default="512Mi per CPU",
    ),
]
PublicOption = Annotated[
    bool | None,
    typer.Option(
        "--public/--private",
        help="gcp target: let anyone call the service (the allUsers invoker), or only authenticated callers.",
        show_default="private",
    ),
]
IngressOption = Annotated[
    str | None,
    typer.Option(
        "--ingress",
        metavar="all|internal|internal-and-cloud-load-balancing",
        help="gcp target: where requests to the service may come from.",
        show_default="all",
    ),
]
EnvOption = Annotated[
    list[str] | None,
    typer.Option(
        "--env",
        metavar="NAME=VALUE",
        help="gcp target: an environment variable of the service (repeat for more); not for secrets.",
        show_default=False,
    ),
]

# ``bfctl db``: which flow and which of its databases.
FlowOption = Annotated[
    str | None,
    typer.Option(
        "--flow", metavar="TARGET", help="The flow module, as `bfctl plan TARGET` takes it.", show_default=False
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="The database (its primitive id or its name) when the flow has several with migrations.",
        show_default=False,
    ),
]
DatabaseTargetOption = Annotated[
    str, typer.Option("--target", help="Where the database lives: `local` (embedded, the default) or `gcp`.")
]
