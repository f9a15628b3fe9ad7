"""The ``bfctl`` command line.

Only Typer and the standard library are imported at module level: Rich is
imported when a terminal gets styled output, and the SDK, the runtime and
their dependencies (aiohttp and friends) by the command that needs them, so
``bfctl --help`` stays fast and works even when an optional dependency is
broken. Help pages use Click's formatter (``bfctl.help``), not Typer's Rich
one, whose Markdown and syntax-highlighting imports cost more than the rest
of the start-up together.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import bfctl
from bfctl import console, flags
from bfctl.commands import load, reported_errors
from bfctl.db import db_app
from bfctl.help import MAX_WIDTH, Command, Group
from bfctl.options import (
    AccessLogOption,
    BreakLockOption,
    DashboardOption,
    DeployOption,
    EnvOption,
    FlowArgument,
    GCPProjectOption,
    GCPRegionOption,
    ImageOption,
    InfraTargetOption,
    IngressOption,
    MemoryOption,
    PublicOption,
    SkipPreflightOption,
    StackOption,
    YesOption,
    option,
)

if TYPE_CHECKING:
    from bfctl.loader import LoadedFlow

app = typer.Typer(
    name="bfctl",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": MAX_WIDTH},
)
app.add_typer(db_app, name="db")


def _print_version(value: bool) -> None:
    if value:
        console.info(f"bfctl {bfctl.__version__}")
        raise typer.Exit


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
    """Plan, apply, serve and destroy a backend declared in one Python file."""


@app.command(cls=Command)
def serve(
    target: FlowArgument = None,
    host: Annotated[str | None, option(flags.HOST)] = flags.HOST.default,
    port: Annotated[int | None, option(flags.PORT)] = flags.PORT.default,
    workers: Annotated[int | None, option(flags.WORKERS)] = flags.WORKERS.default,
    grace: Annotated[float, option(flags.GRACE)] = flags.GRACE.default,
    idle_timeout: Annotated[float, option(flags.IDLE_TIMEOUT)] = flags.IDLE_TIMEOUT.default,
    access_log: AccessLogOption = flags.ACCESS_LOG.default,
    log_format: Annotated[str | None, option(flags.LOG_FORMAT)] = flags.LOG_FORMAT.default,
    stack: StackOption = flags.STACK.default,
    infra_target: InfraTargetOption = flags.INFRA_TARGET.default,
    apply_first: Annotated[bool, option(flags.APPLY_FIRST)] = flags.APPLY_FIRST.default,
    gcp_project: GCPProjectOption = flags.GCP_PROJECT.default,
    gcp_region: GCPRegionOption = flags.GCP_REGION.default,
    loop: Annotated[str, option(flags.LOOP)] = flags.LOOP.default,
    threads: Annotated[int | None, option(flags.THREADS)] = flags.THREADS.default,
    dashboard: DashboardOption = flags.DASHBOARD.default,
) -> None:
    """Serve a flow's endpoints, collectors and consumers until SIGTERM or Ctrl+C.

    Dependencies get the outputs of the stack's applied infrastructure; on the local target
    stopped database servers are started first. On Cloud Run (K_SERVICE set) it keeps the
    platform's contract: the port from $PORT on 0.0.0.0, logs as JSON lines for Cloud Logging,
    and an exit within 10 s of SIGTERM; /_bf/health answers startup probes.
    """
    from bfctl.serving import serve_flow

    code = serve_flow(
        target,
        host=host,
        port=port,
        workers=workers,
        grace=grace,
        idle_timeout=idle_timeout,
        access_log=access_log,
        log_format=log_format,
        stack=stack,
        infra_target=infra_target,
        apply_first=apply_first,
        gcp_project=gcp_project,
        gcp_region=gcp_region,
        loop=loop,
        threads=threads,
        dashboard=dashboard,
    )
    raise typer.Exit(code)


@app.command(cls=Command)
def dev(
    target: FlowArgument = None,
    host: Annotated[str | None, typer.Option(show_default="127.0.0.1", help="Interface to bind.")] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, show_default="$PORT when set, else 8000", help="TCP port; 0 picks a free one, kept."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, show_default="decided from the flow", help="Number of worker processes.")
    ] = None,
    grace: Annotated[
        float, typer.Option(min=0.0, help="Seconds in-flight requests get to finish before a restart or the exit.")
    ] = 1.0,
    access_log: AccessLogOption = True,
    stack: StackOption = "dev",
    dashboard: DashboardOption = None,
) -> None:
    """Apply the local target and serve the flow, again on every change to its *.py files or pyproject.toml.

    Each save restarts serving on the same port (applying what the change added); databases and
    emulators keep running with their data; an error in the flow is shown and the next good
    save serves again. Stops on Ctrl+C or SIGTERM.
    """
    with reported_errors():
        from bfctl import dev as reload

        settings = reload.ServeSettings(
            target, host, reload.fixed_port(host, port), stack, workers, grace, access_log, dashboard
        )
        code = reload.run(settings, reload.watched_roots(target, Path.cwd()))
    raise typer.Exit(code)


@app.command(cls=Command)
def plan(
    target: FlowArgument = None,
    stack: StackOption = "dev",
    infra_target: InfraTargetOption = "local",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON (for CI): --format json.")] = False,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="text|json|markdown",
            help="text; JSON for scripts; Markdown (a table of changes) for a pull-request comment.",
        ),
    ] = "text",
    detailed_exitcode: Annotated[
        bool,
        typer.Option("--detailed-exitcode", help="Exit 2 when there are changes, 0 when none, 1 on error."),
    ] = False,
    gcp_project: GCPProjectOption = None,
    gcp_region: GCPRegionOption = None,
    image: ImageOption = None,
    deploy: DeployOption = True,
    memory: MemoryOption = None,
    public: PublicOption = None,
    ingress: IngressOption = None,
    env: EnvOption = None,
    skip_preflight: SkipPreflightOption = False,
) -> None:
    """Show what `apply` would create, update, replace or delete (secrets shown as (secret)).

    On gcp the plan includes the flow's Cloud Run service, its account, role bindings, secrets
    and the image (by digest when the code is unchanged, else the tag apply builds and pushes).
    """
    with reported_errors():
        from bfctl import infra

        if as_json and output not in ("text", "json"):
            raise infra.Refused(f"--json asks for JSON and --format for {output}: pass one of them")
        loaded = load(target, "bfctl plan")
        request = _deploy(loaded, infra_target, image, deploy, memory, public, ingress, env)
        gcp = _gcp(gcp_project, gcp_region)
        output = "json" if as_json else output
        changed = infra.plan(loaded.flow, infra_target, stack, output, gcp, request, skip_preflight=skip_preflight)
    raise typer.Exit(2 if detailed_exitcode and changed else 0)


@app.command(cls=Command)
def apply(
    target: FlowArgument = None,
    stack: StackOption = "dev",
    infra_target: InfraTargetOption = "local",
    yes: YesOption = False,
    break_lock: BreakLockOption = False,
    gcp_project: GCPProjectOption = None,
    gcp_region: GCPRegionOption = None,
    image: ImageOption = None,
    deploy: DeployOption = True,
    memory: MemoryOption = None,
    public: PublicOption = None,
    ingress: IngressOption = None,
    env: EnvOption = None,
    allow_data_loss: Annotated[
        bool,
        typer.Option(
            "--allow-data-loss",
            help="Apply a plan that replaces a BigQuery table or a Cloud SQL instance or database (rows deleted).",
        ),
    ] = False,
    skip_preflight: SkipPreflightOption = False,
) -> None:
    """Create or update the flow's infrastructure; asks first unless --yes.

    On gcp a flow with endpoints or collectors is deployed too: data resources first, then its
    image (built with Docker, else Cloud Build, and pushed; unchanged code is not rebuilt), then
    its Cloud Run service, whose URL is printed with the outputs. Settings also come from
    `[tool.buildflow.gcp]` in pyproject.toml; flags win.
    """
    with reported_errors():
        loaded = load(target, "bfctl apply")
        from bfctl import infra

        request = _deploy(loaded, infra_target, image, deploy, memory, public, ingress, env)
        infra.apply(
            loaded.flow,
            infra_target,
            stack,
            yes,
            break_lock,
            _gcp(gcp_project, gcp_region),
            request,
            allow_data_loss=allow_data_loss,
            skip_preflight=skip_preflight,
        )


@app.command(cls=Command)
def doctor(
    target: FlowArgument = None,
    stack: StackOption = "dev",
    infra_target: InfraTargetOption = "local",
    gcp_project: GCPProjectOption = None,
    gcp_region: GCPRegionOption = None,
    image: ImageOption = None,
    public: PublicOption = None,
) -> None:
    """Check, before anything is changed, what would make `apply` fail; exit 1 when a check fails.

    On gcp: the flow's settings, credentials, the project, billing, the APIs the stack uses, the
    organization policies that would refuse it, the permissions apply uses, Cloud Build's
    identity and who builds the image. Each failed check names its fix. `plan` and `apply`
    run the same checks first and stop on a failed one.
    """
    with reported_errors():
        loaded = load(target, "bfctl doctor")
        from bfctl import doctor as checks
        from bfctl import infra

        request = _deploy(loaded, infra_target, image, True, None, public, None, None)
        provider = infra.provider_for(infra_target, stack, _gcp(gcp_project, gcp_region), request)
        passed = checks.run(provider, infra.planned_primitives(loaded.flow, provider)[0])
    raise typer.Exit(0 if passed else 1)


@app.command(cls=Command)
def destroy(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="TARGET",
            help="Accepted for symmetry; destroy removes what the stack's state records.",
            show_default=False,
        ),
    ] = None,
    stack: StackOption = "dev",
    infra_target: InfraTargetOption = "local",
    yes: YesOption = False,
    break_lock: BreakLockOption = False,
    gcp_project: GCPProjectOption = None,
    gcp_region: GCPRegionOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help=(
                "gcp target: turn deletion protection off first and delete buckets with their objects;"
                " without it such resources are named and nothing is deleted."
            ),
        ),
    ] = False,
) -> None:
    """Delete everything the stack made, and only that; asks first unless --yes."""
    with reported_errors():
        from bfctl import infra

        infra.destroy(infra_target, stack, yes, break_lock, _gcp(gcp_project, gcp_region), force=force)


@app.command(cls=Command)
def build(
    target: FlowArgument = None,
    context_only: Annotated[
        Path | None,
        typer.Option(
            "--context-only",
            metavar="DIR",
            file_okay=False,
            help="Only write the build context (Dockerfile, .dockerignore, code, dependencies) to DIR.",
            show_default=False,
        ),
    ] = None,
    push: Annotated[bool, typer.Option("--push", help="Push the image to Artifact Registry once built.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="List the project's files left out of the context, and why.")
    ] = False,
    gcp_project: GCPProjectOption = None,
    gcp_region: GCPRegionOption = None,
) -> None:
    """Build the container image that serves the flow: with Docker, or with Cloud Build (--push) if no daemon answers.

    The tag is a hash of the build context, so unchanged code is not built again. The image is
    tagged for Artifact Registry when the project and region are known, else locally.
    """
    with reported_errors():
        loaded = load(target, "bfctl build")
        from bfctl.providers.gcp.build import build_image

        build_image(
            Path.cwd(),
            loaded.target,
            loaded.flow.managed_primitives,
            context_only=context_only,
            push=push,
            project=gcp_project,
            region=gcp_region,
            say=console.info,
            docker_output=partial(console.info, style="dim"),
            verbose=verbose,
        )


@app.command(cls=Command)
def graph(
    target: FlowArgument = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="text|mermaid|dot", help="text, a Mermaid flowchart, or Graphviz DOT.")
    ] = "text",
) -> None:
    """Show the flow's handlers, the dependencies each needs (with their scopes) and the primitives they use."""
    with reported_errors():
        from bfctl import inspect

        inspect.show_graph(load(target, "bfctl graph").flow, fmt)


@app.command(cls=Command)
def routes(
    target: FlowArgument = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the routes as JSON.")] = False,
) -> None:
    """List the flow's HTTP routes: method, path, handler and kind (endpoint, collector, websocket)."""
    with reported_errors():
        from bfctl import inspect

        inspect.show_routes(load(target, "bfctl routes").flow, as_json)


@app.command(cls=Command)
def outputs(
    stack: StackOption = "dev",
    infra_target: InfraTargetOption = "local",
    as_json: Annotated[bool, typer.Option("--json", help="Print the outputs as JSON.")] = False,
    gcp_project: GCPProjectOption = None,
    gcp_region: GCPRegionOption = None,
) -> None:
    """Show what the stack's last apply recorded for each resource (never a secret)."""
    with reported_errors():
        from bfctl import inspect

        inspect.show_outputs(infra_target, stack, _gcp(gcp_project, gcp_region), as_json)


@app.command(cls=Command)
def init(name: Annotated[str, typer.Argument(help="The project's name and the folder created for it.")]) -> None:
    """Create a starter project: a flow with one endpoint, its test, and a pyproject.toml for bfctl."""
    with reported_errors():
        from bfctl.init import create_project

        root = create_project(name, Path.cwd())
        console.info(f"Created {root}: cd {name} && pytest, then bfctl serve", "bold green")


def _gcp(project: str | None, region: str | None) -> dict[str, str | None]:
    return {"project": project, "region": region}


def _deploy(
    loaded: LoadedFlow,
    infra_target: str,
    image: str | None,
    deploy: bool,
    memory: str | None,
    public: bool | None,
    ingress: str | None,
    env: list[str] | None,
) -> Any:
    """The gcp target's deploy request from the flags (None on other targets)."""
    from bfctl import infra

    flags: dict[str, Any] = {"memory": memory, "public": public, "ingress": ingress}
    if env:
        from bfctl.providers.gcp.deploy import parse_env_flags

        flags["env"] = parse_env_flags(env)
    return infra.deploy_request(loaded, infra_target, flags, image=image, deploy=deploy)


def main() -> None:
    """Console-script entry point: run the app, never showing a raw traceback."""
    try:
        app(prog_name="bfctl")
    except Exception as exc:
        console.unexpected(exc)
        sys.exit(1)
