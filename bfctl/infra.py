"""What ``plan``, ``apply``, ``destroy`` and ``serve`` do with a flow's infrastructure.

The commands in ``cli.py`` stay a few lines each; the provider does the work, and this module
only gathers what the flow declares, asks for confirmation and renders.
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bfctl import console, render
from bfctl.flags import INFRA_TARGET

if TYPE_CHECKING:
    from bfctl.providers.base import Outputs, Provider


class Refused(Exception):
    """The command will not go on (no confirmation, nothing applied, ...): the message says why."""


def declared_primitives(flow: Any, target: str, used: Sequence[Any] = ()) -> list[Any]:
    """The flow's managed primitives and ``used`` (primitives it uses without managing them that
    the target makes), plus the users its sessions log in as with a password, and the
    primitives bfctl does not support that its processors use (for the targets to refuse).

    ``target`` is accepted for symmetry: every target makes the session users.
    """
    from buildflow.dependencies.sqlalchemy import session_users
    from buildflow.io.gcp import CloudSQLDatabase, CloudSQLUser
    from buildflow.io.unsupported import unsupported_in

    primitives = [*flow.managed_primitives, *used, *unsupported_in(flow)]  # the targets refuse the latter

    declared = {p.primitive_id() for p in primitives}
    for database in [p for p in primitives if isinstance(p, CloudSQLDatabase)]:
        for user, password in session_users(database):
            implied = CloudSQLUser(user_name=user, password=password, instance=database.instance)
            if implied.primitive_id() not in declared:
                declared.add(implied.primitive_id())
                primitives.append(implied)
    return primitives


#: The dependency graph of each flow a command reads: compiled once, however many questions
#: (what it uses, what it writes, what its buckets and queries are) the command asks of it.
_GRAPHS: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def dependency_primitives(flow: Any, attributes: tuple[str, ...] | None = None) -> list[Any]:
    """The primitives the flow's dependencies name by ``attributes`` (``bucket_primitive``: the
    buckets of ``BucketDependencyBuilder``; all of ``DEPENDENCY_PRIMITIVES`` by default), read
    from the dependency graph the runtime builds."""
    from buildflow.dependencies.primitives import DEPENDENCY_PRIMITIVES, named_primitives

    nodes = _GRAPHS.get(flow)
    if nodes is None:
        from bfctl.runtime.app import FlowApp

        nodes = _GRAPHS[flow] = FlowApp(flow).nodes
    return [p for n in nodes for p in named_primitives(n.factory.target, attributes or DEPENDENCY_PRIMITIVES)]


def unmanaged_primitives(flow: Any) -> list[Any]:
    """Primitives the flow's processors and dependencies use but do not manage, and the parents
    of managed ones not managed themselves, each after the parents it lives in: BuildFlow let a
    flow use what it does not create."""
    from buildflow.dependencies.sqlalchemy import engine_databases
    from buildflow.io.primitive import Primitive
    from buildflow.io.unsupported import NotSupportedByBfctl, processor_primitives

    found = [*dependency_primitives(flow), *engine_databases()]
    managed = {p.primitive_id() for p in flow.managed_primitives}
    unmanaged: dict[str, Any] = {}

    def add(primitive: Any) -> None:
        for parent in primitive.parents():
            add(parent)
        if primitive.primitive_id() not in managed:
            unmanaged.setdefault(primitive.primitive_id(), primitive)

    for primitive in [*processor_primitives(flow), *found, *flow.managed_primitives]:
        makes_something = isinstance(primitive, Primitive) and primitive.resource_type  # not Empty nor Pulse
        if makes_something and not isinstance(primitive, NotSupportedByBfctl):  # those are refused elsewhere
            add(primitive)
    return list(unmanaged.values())


def planned_primitives(flow: Any, provider: Any) -> tuple[list[Any], list[Any]]:
    """What ``provider`` plans for ``flow``: its declared primitives, with the unmanaged ones the
    target makes (all, locally); and the unmanaged ones it expects to exist (all, on gcp)."""
    unmanaged = unmanaged_primitives(flow)
    expected = provider.expected_to_exist(unmanaged)
    left_alone = {p.primitive_id() for p in expected}
    made = [p for p in unmanaged if p.primitive_id() not in left_alone]
    return declared_primitives(flow, provider.target, made), expected


def _preflight(provider: Any, primitives: list[Any], skip: bool) -> None:
    """Refuse to go on when the preflight found what would make the command fail."""
    from bfctl import doctor

    if doctor.preflight_failed(provider, primitives, skip):
        raise Refused(
            "the preflight found what would make this fail (above); nothing was changed. "
            f"Fix it and run again, or pass --skip-preflight ({doctor.SKIP_ENV}=1) to go on regardless"
        )


def _say_expected(expected: list[Any]) -> None:
    for primitive in expected:
        console.info(_expected_note(primitive))


def _expected_note(primitive: Any) -> str:
    return f"{type(primitive).__name__} {primitive.primitive_id()} is used, not managed: expected to exist."


def _deleted_while_used(result: Any, expected: list[Any]) -> list[str]:
    """Warnings for what the stack made and the flow still uses without managing it (an earlier
    bfctl made processors' sinks and sources): applying would delete it, data and all."""
    used = {p.primitive_id() for p in expected}
    return [
        f"{c.resource_id} is used by the flow but no longer managed, so applying deletes it with its data; "
        "pass it to app.manage(...) to keep it."
        for c in result.changes
        if c.action == "delete" and c.resource_id in used
    ]


def deploy_request(
    loaded: Any, target: str, flags: Mapping[str, Any] | None = None, *, image: str | None = None, deploy: bool = True
) -> Any:
    """What plan and apply do with the flow's service on a target that deploys it (``deploy=False``:
    leave it as it runs); None on others."""
    if not _provider_class(target).deploys:
        return None
    from bfctl.providers.base import DeployRequest

    flow = loaded.flow
    return DeployRequest(
        flow,
        loaded.target,
        dict(flags or {}),
        image=image,
        deploy=deploy,
        say=console.progress,
        unmanaged=tuple(unmanaged_primitives(flow)),
        dependency_sinks=tuple(dependency_primitives(flow, ("sink_primitive",))),
        dependency_buckets=tuple(dependency_primitives(flow, ("bucket_primitive",))),
        dependency_queries=tuple(dependency_primitives(flow, ("query_primitive",))),
    )


def _ask_passphrase() -> str:
    import typer

    return typer.prompt("Pulumi passphrase for the stack's secrets", hide_input=True)


def _provider_class(target: str) -> type[Provider]:
    from bfctl.providers import provider_class

    try:
        return provider_class(target)
    except ValueError as e:
        raise Refused(str(e)) from None


def provider_for(target: str, stack: str, options: Mapping[str, str | None] | None = None, deploy: Any = None) -> Any:
    """The provider for ``target``; ``options`` are its flags (``project``, ``region`` of
    ``--gcp-project``...), ``deploy`` the ``DeployRequest`` (see ``deploy_request``).

    A passphrase the target needs is asked for when a terminal can answer.
    """
    ask = _ask_passphrase if sys.stdin.isatty() else None
    try:
        return _provider_class(target).for_command(Path.cwd(), stack, options or {}, ask, deploy)
    except ValueError as e:
        raise Refused(str(e)) from None


def confirm(question: str, action: str, yes: bool) -> None:
    """Ask ``question`` in a terminal; elsewhere say that ``action`` ("Applying") needs --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Refused(f"{action} needs confirmation: run with --yes, or in a terminal")
    import typer

    if not typer.confirm(question, default=False):
        raise Refused("cancelled; nothing was changed")


def plan(
    flow: Any,
    target: str,
    stack: str,
    output: str,
    options: Mapping[str, str | None] | None = None,
    deploy: Any = None,
    *,
    skip_preflight: bool = False,
) -> bool:
    """Print the plan in the ``output`` format (``render.PLAN_FORMATS``); True when it has changes."""
    if output not in render.PLAN_FORMATS:
        raise Refused(f"unknown plan format `{output}`: use {', '.join(render.PLAN_FORMATS)}")
    provider = provider_for(target, stack, options, deploy)
    primitives, expected = planned_primitives(flow, provider)
    _preflight(provider, primitives, skip_preflight)
    warnings = provider.apply_warnings(primitives)
    result = provider.plan(primitives)
    warnings += _deleted_while_used(result, expected) + result.data_losses() + _guard_notes(provider, result)
    if output == "markdown":  # for a pull-request comment: its notes and warnings are part of it
        notes = [_expected_note(p) for p in expected]
        print(render.plan_markdown(result, notes, warnings), flush=True)  # noqa: T201 - on stdout
        return result.has_changes
    if output == "json":
        print(result.to_json(), flush=True)  # noqa: T201 - the plan as JSON on stdout, for scripts
    else:
        render.plan(result)
        _say_expected(expected)
    for warning in warnings:
        console.warning(warning)
    return result.has_changes


def apply(
    flow: Any,
    target: str,
    stack: str,
    yes: bool,
    break_lock: bool,
    options: Mapping[str, str | None] | None = None,
    deploy: Any = None,
    *,
    allow_data_loss: bool = False,
    skip_preflight: bool = False,
) -> dict[str, dict[str, Any]]:
    """Plan, confirm and apply under one lock; returns the stack's outputs.

    A plan that replaces a table or database is refused without ``allow_data_loss``: the
    replacement starts empty, and ``--yes`` alone (as in CI) must not be enough to lose rows.
    """
    provider = provider_for(target, stack, options, deploy)
    with provider.locked("bfctl apply", break_lock=break_lock):
        primitives, expected = planned_primitives(flow, provider)
        _preflight(provider, primitives, skip_preflight)
        warnings = provider.apply_warnings(primitives)
        result = provider.plan(primitives)
        losses = result.data_losses()
        warnings += _deleted_while_used(result, expected) + losses + _guard_notes(provider, result)
        render.plan(result)
        _say_expected(expected)
        for warning in warnings:
            console.warning(warning)
        if losses and not allow_data_loss:
            raise Refused(
                f"this plan deletes data ({'; '.join(losses)}); nothing was changed. "
                "Copy what is needed first, then apply again with --allow-data-loss"
            )
        if not result.has_changes:
            outputs = provider.outputs()
            render.outputs(outputs)
            return outputs
        confirm("Apply these changes?", "Applying", yes)
        progress = render.Progress()
        try:
            outputs = provider.apply(result, progress)
        except KeyboardInterrupt:  # Ctrl+C: what was made so far is recorded, so either command works
            console.error(
                f"interrupted; run `{suggested('apply', target, stack, options)}` again to finish, "
                f"or `{suggested('destroy', target, stack, options)}`"
            )
            import typer

            raise typer.Exit(130) from None
    console.info(f"Apply complete: {progress.done} resource(s) changed.", "bold green")
    render.outputs(outputs)
    return outputs


def destroy(
    target: str,
    stack: str,
    yes: bool,
    break_lock: bool,
    options: Mapping[str, str | None] | None = None,
    *,
    force: bool = False,
) -> None:
    """Show what goes, confirm and delete it under one lock.

    On gcp a resource with deletion protection on, or a bucket without force_destroy, would
    stop the destroy after the rest is deleted: it is refused up front, naming them, unless
    ``force``, which turns those guards off first. The local target has none to lift: its Cloud
    SQL instances are this machine's, and a bucket still holding objects stops it as on Google.
    """
    provider = provider_for(target, stack, options)
    with provider.locked("bfctl destroy", break_lock=break_lock):
        result = provider.plan([])
        render.plan(result, verb="destroy")
        if not result.has_changes:
            return
        for warning in provider.destroy_warnings(result):
            console.warning(warning)
        guarded = provider.guarded(result)
        for guard in guarded:
            then = "--force turns it off first" if guard.liftable else "--force cannot lift it"
            console.warning(f"{guard.resource_id} {guard.why}: {then}.")
        _refuse_guarded(guarded, force)
        confirm("Destroy these resources?", "Destroying", yes)
        if guarded:
            provider.lift_guards([g.resource_id for g in guarded])
        progress = render.Progress()
        provider.destroy(progress)
    console.info(f"Destroy complete: {progress.done} resource(s) deleted.", "bold green")


def _guard_notes(provider: Any, result: Any) -> list[str]:
    """What ``bfctl destroy`` will do about the guarded resources a plan creates."""
    return [
        f"{g.resource_id} {g.why}: `bfctl destroy` names it and deletes nothing unless --force, "
        + ("which turns that off first." if g.liftable else "and --force cannot lift it.")
        for g in provider.guarded(result)
        if g.change.action == "create"
    ]


def _refuse_guarded(guarded: Sequence[Any], force: bool) -> None:
    """Refuse a destroy that would stop partway at ``guarded``, before anything is deleted."""
    fixed = [g.resource_id for g in guarded if not g.liftable]
    if fixed:
        raise Refused(
            f"Cloud SQL itself protects {', '.join(fixed)} from deletion; nothing was deleted. Set "
            "deletion_protection_enabled=False in its settings and apply, then destroy again"
        )
    if guarded and not force:
        raise Refused(
            f"destroy would stop at {', '.join(g.resource_id for g in guarded)} after deleting the rest; "
            "nothing was deleted. Destroy again with --force to turn deletion protection off and let "
            "buckets go with their objects, or copy what is needed first"
        )


def say_started(what: str) -> None:
    """Say that serving started a stopped server of the stack (it takes a moment, and may move ports)."""
    console.info(f"Started {what}: it was stopped.")


def running_stack(target: str, stack: str, options: Mapping[str, str | None] | None = None) -> Outputs:
    """The stack's outputs once its stopped local servers run, with the flow's Secrets pointed
    at the local stack's values: what code the flow module runs at import connects with."""
    provider = provider_for(target, stack, options)
    provider.use_stack_secrets()
    return provider.ensure_running(say_started)


def _reach_stack_at_import(target: str, stack: str, options: Mapping[str, str | None] | None = None) -> None:
    """Let code the flow module runs at import (``create_all`` on BuildFlow's ``engine``) reach
    the stack: its outputs are read at the first connection."""
    from buildflow.dependencies.flow_dependencies import serve_stack

    serve_stack(target, lambda: running_stack(target, stack, options))


def load_for_serving(
    spec: str | None, target: str, stack: str, apply_first: bool, options: Mapping[str, str | None] | None = None
) -> tuple[Any, bool]:
    """Import the flow so that what its module does at import (tables made with BuildFlow's
    ``engine``) reaches the stack; returns it, and whether it is still to be applied first.

    A module that needs a database not applied yet at import cannot be imported before the
    apply: with ``apply_first``, when the import failed on it (or caught that error),
    ``bfctl apply --yes`` runs first, in a process of its own (which only reads the flow), and
    the flow module is imported again.
    """
    from bfctl.loader import FlowLoadError, load_flow
    from buildflow.dependencies.flow_dependencies import NotApplied, asked_before_applied

    _reach_stack_at_import(target, stack, options)
    try:
        loaded = load_flow(spec, Path.cwd(), full_traceback=console.debug_enabled())
    except FlowLoadError as e:
        if not (apply_first and isinstance(e.raised, NotApplied)):
            raise
    else:
        if not (apply_first and asked_before_applied()):
            return loaded, apply_first
        del sys.modules[loaded.module.__name__]  # it caught the error (as BuildFlow's templates did)
    _apply_in_child(spec, target, stack, options)
    _reach_stack_at_import(target, stack, options)
    return load_flow(spec, Path.cwd(), full_traceback=console.debug_enabled()), False


def _apply_in_child(spec: str | None, target: str, stack: str, options: Mapping[str, str | None] | None) -> None:
    """``bfctl apply --yes --no-deploy`` in a process of its own (which only reads the flow)."""
    import signal
    import subprocess

    command = [sys.executable, "-m", "bfctl", "apply", "--yes", "--no-deploy", *stack_flags(target, stack, options)]
    command += ["--", spec] if spec is not None else []
    with subprocess.Popen(command, stdin=subprocess.DEVNULL) as child:
        try:
            code = child.wait()
        except KeyboardInterrupt:  # stopped (Ctrl+C, `bfctl dev`): the apply unwinds, keeping what it did
            child.send_signal(signal.SIGINT)
            child.wait()
            raise
    if code != 0:
        import typer

        raise typer.Exit(code)  # the apply said why


def outputs_for_serving(
    loaded: Any, target: str, stack: str, apply_first: bool, options: Mapping[str, str | None] | None = None
) -> Any:
    """The applied outputs the runtime hands to dependencies; starts stopped local servers.

    Refuses when something the flow declares was never applied; warns when the stack
    differs from the flow in a way serving can live with (an update not yet applied). On gcp
    this compares with what the last apply recorded, so serving needs neither Pulumi nor a
    passphrase. Inside a deployed container the stack's outputs come from the environment the
    gcp target gave it, and nothing is compared or applied.
    """
    from buildflow.dependencies.flow_dependencies import ResourceOutputs, serve_stack
    from buildflow.deployed import OUTPUTS_ENV

    if given := os.environ.get(OUTPUTS_ENV):
        return _given_outputs(given)
    flow = loaded.flow
    provider = provider_for(target, stack, options)
    provider.use_stack_secrets(flow.services)
    primitives, expected = planned_primitives(flow, provider)
    if not primitives and not expected:
        return ResourceOutputs({}, target)
    if apply_first:  # serving here: the deployed service, if any, stays as it runs
        apply(flow, target, stack, True, False, options, deploy_request(loaded, target, deploy=False))
    outputs = provider.ensure_running(say_started)
    made = provider.make_missing(primitives)
    if made:
        console.info(f"Made on first use (the flow uses them; nothing applied them): {_named(made)}.")
        outputs = provider.ensure_running(say_started)
    pending = provider.recorded_plan(primitives)
    missing = [c.resource_id for c in pending.changes if c.action in ("create", "replace")]
    if missing:
        raise Refused(
            f"not applied on the {target} target (stack `{stack}`): {', '.join(missing)}. "
            f"Run `{suggested('apply', target, stack, options)}` first, or "
            f"`{suggested('serve', target, stack, options, '--apply')}` to do both."
        )
    changed = [c.resource_id for c in pending.changes if c.action != "noop"]
    if changed:
        console.info(f"Warning: the stack differs from the flow for {', '.join(changed)}; run `bfctl plan`.", "yellow")
    for name, value in provider.client_environment().items():
        if os.environ.setdefault(name, value) == value:  # the shell's own choice stands
            console.info(f"Google clients the flow makes reach the stack's emulator: {name}={value}")
    outputs = {**provider.existing_outputs(expected), **outputs}  # what exists already, as its names say
    serve_stack(target, lambda: outputs)  # what the workers' first connections read
    return ResourceOutputs(outputs, target)


def stack_flags(target: str, stack: str, options: Mapping[str, str | None] | None = None) -> list[str]:
    """The flags naming ``stack`` on ``target`` and the gcp project and region given: defaults
    left out, so a suggested command is as short as the one the user would type."""
    flags = [] if target == INFRA_TARGET.default else ["--target", target]
    flags += [] if stack == "dev" else ["--stack", stack]
    return flags + [arg for name, value in (options or {}).items() if value for arg in (f"--gcp-{name}", value)]


def suggested(command: str, target: str, stack: str, options: Mapping[str, str | None] | None, *more: str) -> str:
    """``bfctl <command>`` for the same stack and target as the running command: copied as
    printed, it acts where the running one did (without --target gcp it would apply locally)."""
    return " ".join(["bfctl", command, *stack_flags(target, stack, options), *more])


def _named(changes: list[Any]) -> str:
    return ", ".join(f"{c.resource_id} ({c.resource_type})" for c in changes)


def _given_outputs(text: str) -> Any:
    """The outputs in ``$BUILDFLOW_OUTPUTS`` (set by the gcp target on the Cloud Run service)."""
    from buildflow.dependencies.flow_dependencies import ResourceOutputs

    try:
        return ResourceOutputs.from_json(text)
    except ValueError as e:
        raise Refused(str(e)) from None
